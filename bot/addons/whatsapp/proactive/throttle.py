"""Limits every campaign process shares, on Redis.

* **Throughput** (``WPP_CAMPAIGN_RATE_PER_SECOND``, 80 by default: Meta's per-number
  throughput, 20 for a number shared with the WhatsApp Business app): a counter per time
  window, incremented atomically by every process; a process over the budget waits for
  the next window. Fixed windows: within one window the budget is never exceeded.
* **Daily messaging limit** (``WPP_DAILY_RECIPIENT_LIMIT``, 250: Meta's first tier): the
  unique citizens messaged in the last rolling 24 h, a sorted set by time. A citizen
  already in it costs nothing; a new one is admitted only while the set is under the
  limit, counted *before* sending. It counts every campaign recipient, also those inside a
  service window (Meta does not count those): conservative, never over.

Without ``REDIS_URL`` the same limits hold inside the one process (a warning says so).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

DAY: Final = 86400.0

RATE_SCRIPT: Final = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""

DAILY_SCRIPT: Final = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[4]))
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def window(rate_per_second: float) -> tuple[float, int]:
    """(window seconds, messages per window) for a rate: 80/s ▸ (1, 80); 0.5/s ▸ (2, 1)."""
    seconds = max(1.0, 1.0 / rate_per_second)
    return seconds, max(1, math.floor(rate_per_second * seconds))


class SharedLimits:
    """The two limits, for the business number ``phone_number_id``.

    Args:
        redis: an asyncio Redis client, or None for in-process limits.
    """

    def __init__(
        self,
        redis: Any,
        phone_number_id: str,
        rate_per_second: float,
        daily_limit: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._redis = redis
        self._number = phone_number_id
        self._seconds, self._budget = window(rate_per_second)
        self._daily = daily_limit
        self._clock = clock
        self._sleep = sleep
        self._local_counts: dict[int, int] = {}
        self._local_daily: dict[str, float] = {}

    async def acquire(self) -> None:
        """Wait until one more message fits the throughput budget."""
        while True:
            now = self._clock()
            slot = int(now // self._seconds)
            if await self._count(slot) <= self._budget:
                return
            await self._sleep((slot + 1) * self._seconds - now + 0.001)

    async def _count(self, slot: int) -> int:
        if self._redis is None:
            self._local_counts = {slot: self._local_counts.get(slot, 0) + 1}
            return self._local_counts[slot]
        key = f"wa:campaign:rate:{self._number}:{slot}"
        ttl_ms = int(self._seconds * 2000)
        return int(await self._redis.eval(RATE_SCRIPT, 1, key, ttl_ms))

    async def admit(self, recipient: str) -> bool:
        """True when ``recipient`` may be messaged under the daily limit (and is counted)."""
        now = self._clock()
        if self._redis is None:
            self._local_daily = {r: t for r, t in self._local_daily.items() if t > now - DAY}
            if recipient in self._local_daily:
                return True
            if len(self._local_daily) >= self._daily:
                return False
            self._local_daily[recipient] = now
            return True
        key = f"wa:campaign:daily:{self._number}"
        admitted = await self._redis.eval(DAILY_SCRIPT, 1, key, now, recipient, self._daily, DAY)
        return bool(int(admitted))
