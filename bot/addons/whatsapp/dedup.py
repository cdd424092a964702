"""Deduplication of webhook deliveries by message id (``wamid``).

Meta redelivers anything not acknowledged, to every app subscribed on the account, for up
to 7 days, so the same message can arrive several times, even at once. A message is handled
only by whoever *claims* its id first. Claims expire after a TTL and the in-memory store is
bounded. ``RedisDedupStore`` shares claims between several ``rasa run`` processes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol


class DedupStore(Protocol):
    """Atomic claim of a key: True for the first caller only, until the TTL expires."""

    async def claim(self, key: str) -> bool:
        """Claim ``key``; False when it was already claimed."""

    async def release(self, key: str) -> None:
        """Forget a claim (its message was refused, so a redelivery must be handled)."""

    async def close(self) -> None:
        """Release connections."""


class MemoryDedupStore:
    """In-process claims with a TTL and a maximum size (oldest claims are dropped first).

    Claims happen on the event loop thread without awaiting, so they are atomic for
    concurrent requests of one process.
    """

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

    async def claim(self, key: str) -> bool:
        now = self._clock()
        self._evict(now)
        if key in self._expiry:
            return False
        self._expiry[key] = now + self._ttl
        while len(self._expiry) > self._max:
            self._expiry.popitem(last=False)
        return True

    async def release(self, key: str) -> None:
        self._expiry.pop(key, None)

    async def close(self) -> None:
        self._expiry.clear()

    def _evict(self, now: float) -> None:
        # Insertion order is expiry order (same TTL for all), so expired keys are at the front.
        while self._expiry:
            key, expires = next(iter(self._expiry.items()))
            if expires > now:
                break
            del self._expiry[key]


class RedisDedupStore:
    """Claims shared by every process on one Redis: ``SET key 1 NX EX ttl``.

    Raises ``redis.exceptions.RedisError`` when Redis is unreachable; the channel then
    answers 503 so Meta redelivers, rather than acknowledging what it cannot protect.
    """

    def __init__(self, url: str, ttl_seconds: float = 86400.0, prefix: str = "wa:dedup:") -> None:
        from redis import asyncio as aioredis

        self._redis: Any = aioredis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, retry_on_timeout=False
        )
        self._ttl = max(1, int(ttl_seconds))
        self._prefix = prefix

    async def claim(self, key: str) -> bool:
        return bool(await self._redis.set(self._prefix + key, b"1", nx=True, ex=self._ttl))

    async def release(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def close(self) -> None:
        await self._redis.close()


def create_dedup_store(redis_url: str, ttl_seconds: float, max_entries: int) -> DedupStore:
    """Redis when ``redis_url`` is set, memory otherwise."""
    if redis_url:
        return RedisDedupStore(redis_url, ttl_seconds)
    return MemoryDedupStore(ttl_seconds, max_entries)
