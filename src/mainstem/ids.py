"""Message ids that Mainstem assigns when a request has none.

Segment's HTTP API assigns ``api-`` + a 27-character KSUID (reference §2.10, §4). Ours have the
same shape, but the 16 "random" bytes are a hash of where the message sits in the event log, so
reprocessing the log after a crash assigns the same id again.
"""

from __future__ import annotations

import hashlib
import itertools

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KSUID_EPOCH = 1_400_000_000


_PAYLOAD = (1 << 128) - 1
NEXT_DIGIT = dict(itertools.pairwise(_ALPHABET))
"""Each base62 digit but the last → the one after it."""

_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
"""Two base62 digits per division: half the big-integer divisions of one digit at a time."""


def ksuid(seconds: int, entropy: bytes) -> str:
    """A 27-character base62 KSUID from a Unix time and 16 bytes."""
    return base62(ksuid_number(seconds, int.from_bytes(entropy[:16].ljust(16, b"\0"), "big")))


def ksuid_number(seconds: int, payload: int) -> int:
    """The 160-bit number of a KSUID: 32 bits of time since the KSUID epoch, 128 of payload."""
    stamp = max(0, min(seconds - _KSUID_EPOCH, 0xFFFFFFFF))
    return (stamp << 128) | (payload & _PAYLOAD)


def base62(number: int) -> str:
    """``number`` (< 2**160) as 27 base62 digits, the text of a KSUID."""
    digits = []
    for _ in range(13):
        number, pair = divmod(number, 3844)
        digits.append(_PAIRS[pair])
    digits.append(_ALPHABET[number])  # 160 bits < 62**27: one digit is left
    digits.reverse()
    return "".join(digits)


def assigned_message_id(received_at_us: int, seed: str) -> str:
    """The id for a message that arrived without one; ``seed`` locates it in the log."""
    entropy = hashlib.blake2b(seed.encode(), digest_size=16).digest()
    return "api-" + ksuid(received_at_us // 1_000_000, entropy)
