"""The one way the channel connects to Redis (dedup and journal, short keys, Serpro token).

Every call has a 2 s timeout. A pooled connection that Redis closed (Redis restarted) is
retried once on a fresh connection, so a restart costs no request; while Redis is really
down, calls fail fast and the webhook answers 503.
"""

from __future__ import annotations

from typing import Any


def redis_client(url: str) -> Any:
    from redis import asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    return aioredis.from_url(
        url,
        socket_timeout=2,
        socket_connect_timeout=2,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
    )
