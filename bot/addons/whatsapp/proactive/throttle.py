"""Limits every campaign process shares, on Redis.

* **Throughput** (``WPP_CAMPAIGN_RATE_PER_SECOND``, 80 by default: Meta's per-number
  throughput, 20 for a number shared with the WhatsApp Business app): every process
  reserves the next free send time on Redis (one atomic script, Redis's own clock), the
  reservations spaced evenly. Evenly spaced rather than a counter per second, because a
  counter lets a whole second's budget leave at once at the start of each second, and the
  stragglers of the previous second then arrive in the same one: a first version measured
  44 arrivals in one second at 40/s. Spaced ``1/(rate - 1)`` apart, any one second of
  arrivals holds at most ``rate`` messages as long as no send leaves more than one
  spacing after its time: 98.75 % of the budget at 80/s. A process that wakes up later
  than that (a busy host) would crowd the next second, so every send is also counted in a
  sliding one-second window on Redis and goes only while it holds fewer than ``rate - 1``
  (one message of room for the network); refused, it reserves another time
  (:meth:`SharedLimits.acquire`).
* **Daily messaging limit** (``WPP_DAILY_RECIPIENT_LIMIT``, 250: Meta's first tier): the
  unique citizens messaged in the last rolling 24 h, a sorted set by time. A citizen
  already in it costs nothing; a new one is admitted only while the set is under the
  limit, counted *before* sending. It counts every campaign recipient, also those inside a
  service window (Meta does not count those): conservative, never over.

Without ``REDIS_URL`` the same limits hold inside the one process (a warning says so).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

DAY: Final = 86400.0

PACE_SCRIPT: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local interval = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
local ttl = math.ceil((slot + interval - now) * 1000) + 1000
redis.call('SET', KEYS[1], tostring(slot + interval), 'PX', ttl)
return tostring(slot - now)
"""

# The sends of the last window (a sorted set by Redis's time): one more only while it holds
# fewer than the limit.
WINDOW_SCRIPT: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
return 1
"""

DAILY_SCRIPT: Final = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[4]))
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def spacing(rate_per_second: float) -> float:
    """Seconds between two sends: ``1/(rate - 1)`` (see above), ``1/rate`` under 2/s."""
    return 1.0 / (rate_per_second - 1 if rate_per_second >= 2 else rate_per_second)


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
        self._interval = spacing(rate_per_second)
        # At most ``rate - 1`` sends leave in any one second (one message of room for the
        # network's jitter on the way to Meta; one in 1/rate s under 2/s), as many as the
        # spacing lets go when every process is on time.
        self._window = max(1.0, 1.0 / rate_per_second)
        self._window_limit = max(1, int(rate_per_second) - 1)
        self._sent: list[float] = []
        self._next_local = 0.0
        self._daily = daily_limit
        self._clock = clock
        self._sleep = sleep
        self._local_daily: dict[str, float] = {}

    async def acquire(self) -> None:
        """Reserve the next send time shared by every process, wait for it, and send only
        if the last second's sends (every process's) leave room: a process that wakes up
        late (a busy host) would otherwise land in the next send's second and crowd it over
        the rate. Refused, it reserves another time; so a busy host slows a campaign down
        and never pushes it over its limit, and a punctual one loses nothing."""
        while True:
            wait = await self._reserve()
            if wait > 0:
                await self._sleep(wait)
            if await self._enter_window():
                return

    async def _enter_window(self) -> bool:
        """Count this send in the sliding window, if it has room."""
        if self._redis is None:
            now = self._clock()
            self._sent = [t for t in self._sent if t > now - self._window] + [now]
            if len(self._sent) <= self._window_limit:
                return True
            self._sent.pop()
            return False
        key = f"wa:campaign:window:{self._number}"
        args = (self._window_limit, repr(self._window), uuid.uuid4().hex)
        return bool(int(await self._redis.eval(WINDOW_SCRIPT, 1, key, *args)))

    async def _reserve(self) -> float:
        """Seconds until this process's reserved send time."""
        if self._redis is None:
            now = self._clock()
            slot = max(now, self._next_local)
            self._next_local = slot + self._interval
            return slot - now
        key = f"wa:campaign:pace:{self._number}"
        return float(await self._redis.eval(PACE_SCRIPT, 1, key, repr(self._interval)))

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
