"""The one way the channel connects to Redis (dedup and journal, short keys, Serpro token).

Every call has a 2 s timeout. A pooled connection that Redis closed (Redis restarted) is
retried once on a fresh connection, so a restart costs no request; while Redis is really
down, calls fail fast and the webhook answers 503.

The password is the one in ``REDIS_URL`` (``redis://:password@host``) or, when the URL has
none, ``REDIS_PASSWORD``, so a secret store can hold it apart from the URL; ``rediss://``
connects over TLS, verifying the server's certificate. Rasa's own lock and tracker stores
get the same settings (``scripts/endpoints.py``).
"""

from __future__ import annotations

import os
from typing import Any


def redis_client(url: str, password: str | None = None) -> Any:
    """A client for ``url``; ``password`` (default ``REDIS_PASSWORD``) when the URL has none."""
    from redis import asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    # from_url lets the URL's own password win over this keyword.
    return aioredis.from_url(
        url,
        password=password if password is not None else os.environ.get("REDIS_PASSWORD") or None,
        socket_timeout=2,
        socket_connect_timeout=2,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
    )
