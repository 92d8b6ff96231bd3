"""Message ids that Mainstem assigns when a request has none.

Segment's HTTP API assigns ``api-`` + a 27-character KSUID (reference §2.10, §4). Ours have the
same shape, but the 16 "random" bytes are a hash of where the message sits in the event log, so
reprocessing the log after a crash assigns the same id again.
"""

from __future__ import annotations

import hashlib

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KSUID_EPOCH = 1_400_000_000


def ksuid(seconds: int, entropy: bytes) -> str:
    """A 27-character base62 KSUID from a Unix time and 16 bytes."""
    stamp = max(0, min(seconds - _KSUID_EPOCH, 0xFFFFFFFF))
    number = int.from_bytes(stamp.to_bytes(4, "big") + entropy[:16].ljust(16, b"\0"), "big")
    digits = []
    while number:
        number, rem = divmod(number, 62)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits)).rjust(27, "0")


def assigned_message_id(received_at_us: int, seed: str) -> str:
    """The id for a message that arrived without one; ``seed`` locates it in the log."""
    entropy = hashlib.blake2b(seed.encode(), digest_size=16).digest()
    return "api-" + ksuid(received_at_us // 1_000_000, entropy)
