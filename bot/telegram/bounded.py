"""Per-chat records the front end keeps in memory, bounded however many chats it meets:
the most recently used entries are kept, and a count of distinct chats stays exact up to
a limit, then becomes an estimate of fixed size."""

from __future__ import annotations

import collections
import hashlib
import math
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["DistinctCount", "Recent"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """A mapping of at most `limit` entries; adding past it drops the least recently used."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: collections.OrderedDict[K, V] = collections.OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


class DistinctCount:
    """How many distinct ids were added: exact up to `exact_limit` ids, then a
    HyperLogLog estimate (2^12 one-byte registers, about 1.6% off) that never grows."""

    _BITS = 12

    def __init__(self, exact_limit: int = 10_000) -> None:
        self.exact_limit = exact_limit
        self._exact: set[int] | None = set()
        self._registers = bytearray(1 << self._BITS)

    def add(self, item: int) -> None:
        self._observe(item)
        if self._exact is not None:
            self._exact.add(item)
            if len(self._exact) > self.exact_limit:
                self._exact = None  # the registers have seen every id: they carry on

    def __len__(self) -> int:
        if self._exact is not None:
            return len(self._exact)
        return self._estimate()

    def held(self) -> int:
        """Ids held one by one (none once past the exact limit)."""
        return len(self._exact) if self._exact is not None else 0

    def _observe(self, item: int) -> None:
        digest = hashlib.blake2b(item.to_bytes(16, "big", signed=True), digest_size=8).digest()
        value = int.from_bytes(digest, "big")
        index = value >> (64 - self._BITS)
        rest = value & ((1 << (64 - self._BITS)) - 1)
        rank = (64 - self._BITS) - rest.bit_length() + 1
        if rank > self._registers[index]:
            self._registers[index] = rank

    def _estimate(self) -> int:
        m = len(self._registers)
        alpha = 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / sum(2.0**-r for r in self._registers)
        zeros = self._registers.count(0)
        if raw <= 2.5 * m and zeros:
            return round(m * math.log(m / zeros))  # few ids: linear counting is closer
        return round(raw)
