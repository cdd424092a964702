"""Deduplication of webhook deliveries by message id (``wamid``).

Meta redelivers anything not acknowledged, to every app subscribed on the account, for up
to 7 days, so the same message can arrive several times, even at once. A message is handled
only by whoever *claims* its id first. Claims expire after a TTL and the in-memory store is
bounded. With Redis, claims are shared by every process and each claim also journals the
message (:mod:`bot.addons.whatsapp.delivery.journal`), so what was acknowledged outlives
the process that acknowledged it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

from bot.addons.whatsapp.delivery.journal import Orphan, RedisDedupStore


class DedupStore(Protocol):
    """Atomic claim of a key: True for the first caller only, until the TTL expires."""

    journaled: bool  # True when acknowledged messages survive this process
    owner: str  # this process's journal ("" when there is none)

    async def claim(self, key: str, record: str = "") -> bool:
        """Claim ``key`` (and journal ``record``); False when it was already claimed."""

    async def take_over(self, key: str, record: str, owner: str) -> bool:
        """Move ``key`` from the journal of ``owner`` (the ingress that acknowledged it) to
        this process's; False when that journal no longer holds it (already taken over
        or adopted), so a relay sent twice runs its turn once. Without a journal of
        ``owner``, a plain :meth:`claim`."""

    async def release(self, key: str) -> None:
        """Forget a claim (its message was refused, so a redelivery must be handled)."""

    async def finish(self, key: str) -> None:
        """The turn of ``key`` is over: drop it from the journal, keep the claim."""

    async def count_sent(self, key: str) -> None:
        """One more WhatsApp message was delivered for the turn of ``key``."""

    async def keep_alive(self, adopt: bool = True) -> list[Orphan]:
        """Renew this process's lease; adopt dead processes' journals and return every
        adopted message not yet queued (:meth:`forget_adopted`), oldest first."""

    async def forget_adopted(self, keys: Sequence[str]) -> None:
        """These adopted messages were queued for their turns."""

    async def owns(self, key: str) -> bool:
        """Whether ``key`` is still this process's to answer (not adopted by another)."""

    async def retire(self) -> None:
        """Give up the lease at a clean shutdown (what is left is adopted at once)."""

    async def close(self) -> None:
        """Release connections."""


class MemoryDedupStore:
    """In-process claims with a TTL and a maximum size (oldest claims are dropped first).

    Claims happen on the event loop thread without awaiting, so they are atomic for
    concurrent requests of one process. Nothing outlives the process (no journal).
    """

    journaled = False
    owner = ""

    def __init__(
        self,
        ttl_seconds: float = 86400.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    async def claim(self, key: str, record: str = "") -> bool:
        now = self._clock()
        self._evict(now)
        if key in self._expiry:
            return False
        self._expiry[key] = now + self._ttl
        while len(self._expiry) > self._max:
            self._expiry.popitem(last=False)
        return True

    async def take_over(self, key: str, record: str, owner: str) -> bool:
        return await self.claim(key, record)

    async def release(self, key: str) -> None:
        self._expiry.pop(key, None)

    async def finish(self, key: str) -> None:
        return None

    async def count_sent(self, key: str) -> None:
        return None

    async def keep_alive(self, adopt: bool = True) -> list[Orphan]:
        return []

    async def forget_adopted(self, keys: Sequence[str]) -> None:
        return None

    async def owns(self, key: str) -> bool:
        return True

    async def retire(self) -> None:
        return None

    async def close(self) -> None:
        self._expiry.clear()

    def _evict(self, now: float) -> None:
        # Insertion order is expiry order (same TTL for all), so expired keys are at the front.
        while self._expiry:
            key, expires = next(iter(self._expiry.items()))
            if expires > now:
                break
            del self._expiry[key]


def create_dedup_store(
    redis_url: str, ttl_seconds: float, max_entries: int, lease_seconds: float = 15.0
) -> DedupStore:
    """Redis when ``redis_url`` is set, memory otherwise."""
    if redis_url:
        return RedisDedupStore(redis_url, ttl_seconds, lease_seconds=lease_seconds)
    return MemoryDedupStore(ttl_seconds, max_entries)
