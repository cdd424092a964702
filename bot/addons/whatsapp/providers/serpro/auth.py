"""Serpro's OAuth2 token: fetched with the client credentials, cached until shortly before it
expires, refreshed by one caller at a time, and dropped when the API answers 401."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp

from bot.addons.whatsapp.errors import WhatsAppApiError
from bot.addons.whatsapp.redis_client import redis_client

logger = logging.getLogger(__name__)
# Refresh this long before the token expires, so a request never carries a dying token.
EXPIRY_MARGIN_SECONDS = 60.0


class TokenCache(Protocol):
    """Where the token is kept (memory, or Redis shared by several processes)."""

    async def get(self) -> str | None: ...

    async def set(self, token: str, ttl_seconds: float) -> None: ...

    async def delete(self) -> None: ...


class MemoryTokenCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0

    async def get(self) -> str | None:
        return self._token if self._token and self._clock() < self._expires else None

    async def set(self, token: str, ttl_seconds: float) -> None:
        self._token, self._expires = token, self._clock() + ttl_seconds

    async def delete(self) -> None:
        self._token = None


class RedisTokenCache:
    """The token on Redis with its TTL, so every process shares one token."""

    def __init__(self, url: str, key: str = "wa:serpro:token") -> None:
        self._redis: Any = redis_client(url)
        self._key = key

    async def get(self) -> str | None:
        value = await self._redis.get(self._key)
        return value.decode() if value else None

    async def set(self, token: str, ttl_seconds: float) -> None:
        await self._redis.set(self._key, token.encode(), ex=max(1, int(ttl_seconds)))

    async def delete(self) -> None:
        await self._redis.delete(self._key)


class TokenManager:
    """Gives a valid bearer token for Serpro's API.

    Args:
        token_url: ``{SERPRO_BASE_URL}/oauth2/token``.
        client_id / client_secret: Serpro's credentials (form fields, as Serpro expects).
        session: returns the pooled HTTP session.
        cache: where the token lives.
        default_ttl: lifetime when the answer has no ``expires_in`` (600 s: the reported 10 min).
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        session: Callable[[], aiohttp.ClientSession],
        cache: TokenCache | None = None,
        default_ttl: float = 600.0,
    ) -> None:
        self._url = token_url
        self._client_id = client_id
        self._secret = client_secret
        self._session = session
        self.cache: TokenCache = cache or MemoryTokenCache()
        self._default_ttl = default_ttl
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def token(self) -> str:
        """A cached token, or a new one; concurrent callers share a single fetch."""
        cached = await self.cache.get()
        if cached:
            return cached
        async with self._lock:
            cached = await self.cache.get()  # another caller may have fetched it meanwhile
            if cached:
                return cached
            token, ttl = await self._fetch()
            await self.cache.set(token, max(1.0, ttl - EXPIRY_MARGIN_SECONDS))
            return token

    async def invalidate(self) -> None:
        """Forget the token (the API refused it)."""
        await self.cache.delete()

    async def _fetch(self) -> tuple[str, float]:
        self.fetches += 1
        form = {"client_id": self._client_id, "client_secret": self._secret}
        try:
            async with self._session().post(self._url, data=form) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise WhatsAppApiError.network(exc) from exc
        try:
            data: Any = json.loads(text) if text else {}
        except ValueError:
            data = {}
        if status >= 400 or not isinstance(data, dict) or not data.get("access_token"):
            reason = (
                (data.get("error_description") or data.get("message"))
                if isinstance(data, dict)
                else None
            )
            raise WhatsAppApiError(
                0,
                f"Serpro refused the client credentials (HTTP {status}): "
                f"{reason or 'no access_token'}",
                http_status=status if status >= 400 else 502,
            )
        expires = data.get("expires_in")
        ttl = (
            float(expires)
            if isinstance(expires, (int, float, str)) and str(expires).replace(".", "", 1).isdigit()
            else self._default_ttl
        )
        logger.info("Serpro token obtained (valid %.0fs)", ttl)
        return str(data["access_token"]), ttl
