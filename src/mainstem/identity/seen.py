"""Which identifiers the profiles store may hold: a Bloom filter over all of them.

Most identifiers a batch brings are new (every first visit is a new ``anonymous_id``): measured
on the identity bench, 99% of the identifiers the resolver looked up in ``profiles.db`` were in
no profile. The filter answers "certainly not there" without a query; "maybe" still goes to
the store. It holds a few bits per identifier (10, for about 3% false "maybe"s), never forgets,
and doubles (the caller refills it) when it holds more than it was sized for.

Keys are Python's ``hash`` of the ``(type, value)`` pair, which is also the hash of an
:class:`~mainstem.identity.identifiers.ExternalId` holding them, so a row read from SQLite is
added without building one. The hash is salted per process: a filter lives in one process.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TypeVar

_BITS_PER_KEY = 10
_MIN_KEYS = 1 << 22
"""The smallest filter: 4M keys in 5 MiB, so most stores never need a refill."""

_Key = TypeVar("_Key", bound=Hashable)


class Seen:
    def __init__(self, capacity: int = _MIN_KEYS) -> None:
        self.capacity = max(capacity, _MIN_KEYS)
        size = 1 << (self.capacity * _BITS_PER_KEY - 1).bit_length()  # a power of two
        self._mask = size - 1
        self._bits = bytearray(size // 8)
        self.count = 0

    def update(self, keys: Iterable[Hashable]) -> None:
        mask, bits, count = self._mask, self._bits, 0
        for key in keys:
            h = hash(key)
            a, b = h & mask, (h >> 32) & mask
            bits[a >> 3] |= 1 << (a & 7)
            bits[b >> 3] |= 1 << (b & 7)
            count += 1
        self.count += count

    def maybe(self, keys: Iterable[_Key]) -> list[_Key]:
        """Those of ``keys`` that may have been added (one call for many: this is hot)."""
        mask, bits = self._mask, self._bits
        out = []
        for key in keys:
            h = hash(key)
            a, b = h & mask, (h >> 32) & mask
            if bits[a >> 3] >> (a & 7) & 1 and bits[b >> 3] >> (b & 7) & 1:
                out.append(key)
        return out

    def full(self) -> bool:
        """More keys than it was sized for: false "maybe"s grow; refill a bigger one."""
        return self.count > self.capacity
