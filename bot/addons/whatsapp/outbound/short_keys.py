"""Short keys for button/row ids over WhatsApp's limit, mapped back to the Rasa payload.

The conversion (``choices.py``) replaces a payload too long, repeated or unusable as an id
with a deterministic short key (``payload_ids``); the output channel remembers
key ▸ payload (``Conversion.payload_keys``) in a ``PayloadStore`` before sending, and the
inbound side resolves a tapped id back to the payload. In memory by default; on Redis
when ``REDIS_URL`` is set, so any process can resolve a key another one made.

Must not import the conversion (``convert.py`` and its parts import this).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bot.addons.whatsapp.redis_client import redis_client

SHORT_KEY_PREFIX = "~k:"
# A list can be tapped long after it was sent; keep keys for 30 days.
DEFAULT_TTL = 30 * 24 * 3600.0


def short_key(payload: str, salt: str = "") -> str:
    """A deterministic key for a payload too long (or unusable) as a button/row id."""
    digest = hashlib.sha256(f"{salt}\x00{payload}".encode()).digest()
    return SHORT_KEY_PREFIX + base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def payload_ids(payloads: Sequence[str], limit: int) -> tuple[list[str], dict[str, str]]:
    """Ids within ``limit`` and unique, and the key ▸ payload map of those made short keys.

    A payload is its own id when it fits, has no surrounding blanks and is not repeated;
    otherwise it gets a short key, which the returned map resolves back to it.
    """
    ids = []
    keys: dict[str, str] = {}
    used: set[str] = set()
    for index, payload in enumerate(payloads):
        usable = payload and payload == payload.strip() and len(payload) <= limit
        identifier = payload if usable and payload not in used else short_key(payload, str(index))
        if identifier != payload:
            keys[identifier] = payload
        used.add(identifier)
        ids.append(identifier)
    return ids, keys


class PayloadStore:
    """Bounded in-memory key ▸ payload map with a TTL."""

    def __init__(
        self,
        ttl_seconds: float = DEFAULT_TTL,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def remember(self, mapping: Mapping[str, str]) -> None:
        expires = self._clock() + self._ttl
        for key, payload in mapping.items():
            self._items[key] = (expires, payload)
            self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    async def resolve(self, reply_id: str) -> str:
        """The payload behind a short key; any other id is returned unchanged."""
        if not reply_id.startswith(SHORT_KEY_PREFIX):
            return reply_id
        item = self._items.get(reply_id)
        if item is None or item[0] < self._clock():
            return reply_id
        return item[1]

    async def close(self) -> None:
        self._items.clear()


class RedisPayloadStore(PayloadStore):
    """The same map on Redis, shared by every ``rasa run`` process."""

    def __init__(
        self, url: str, ttl_seconds: float = DEFAULT_TTL, prefix: str = "wa:payload:"
    ) -> None:
        super().__init__(ttl_seconds)
        self._redis: Any = redis_client(url)
        self._prefix = prefix

    async def remember(self, mapping: Mapping[str, str]) -> None:
        if mapping:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, payload in mapping.items():
                    pipe.set(self._prefix + key, payload.encode("utf-8"), ex=int(self._ttl))
                await pipe.execute()

    async def resolve(self, reply_id: str) -> str:
        if not reply_id.startswith(SHORT_KEY_PREFIX):
            return reply_id
        value = await self._redis.get(self._prefix + reply_id)
        return value.decode("utf-8") if value is not None else reply_id

    async def close(self) -> None:
        await self._redis.close()


def create_payload_store(redis_url: str) -> PayloadStore:
    return RedisPayloadStore(redis_url) if redis_url else PayloadStore()
