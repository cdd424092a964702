"""Serpro's WhatsApp API as a provider: the same messages, Serpro's endpoints and OAuth2."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.errors import BSUID_UNSUPPORTED_CODE, WhatsAppApiError
from bot.addons.whatsapp.inbound.identity import is_bsuid
from bot.addons.whatsapp.logs import mask_id, mask_phone
from bot.addons.whatsapp.outbound.messages import OutMessage
from bot.addons.whatsapp.providers.serpro.auth import (
    MemoryTokenCache,
    RedisTokenCache,
    TokenCache,
    TokenManager,
)
from bot.addons.whatsapp.providers.serpro.bodies import serpro_request

logger = logging.getLogger(__name__)


def error_from(status: int, data: Any) -> WhatsAppApiError:
    """A typed error from Serpro's answer (Meta's error object is passed through when present)."""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return WhatsAppApiError.from_response(status, data)
    message = ""
    code = 0
    if isinstance(data, dict):
        message = str(
            data.get("mensagem") or data.get("message") or data.get("error_description") or ""
        )
        for key in ("codigo", "code"):
            if isinstance(data.get(key), int):
                code = int(data[key])
                break
    return WhatsAppApiError(code, message or f"Serpro answered HTTP {status}", http_status=status)


class SerproProvider:
    """Sends through ``{base}/client/{client_id}/v2/requisicao/...`` with a bearer token.

    Any 2xx is success; the request id Serpro returns (``idRequisicao``, or ``id``) is logged
    and returned. A 401 drops the token, re-authenticates and retries once.
    """

    name = "serpro"

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        waba_id: str,
        timeout: float = 10.0,
        read_receipt_path: str = "requisicao/informacao-de-leitura",
        recipient_plus: bool = False,
        token_cache: TokenCache | None = None,
        token_ttl: float = 600.0,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.client_id = client_id
        self.waba_id = waba_id
        self.api = f"{self.base}/client/{client_id}/v2"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._read_path = read_receipt_path.strip("/")
        self._plus = recipient_plus
        self._session: aiohttp.ClientSession | None = None
        self.tokens = TokenManager(
            f"{self.base}/oauth2/token",
            client_id,
            client_secret,
            self.session,
            token_cache or MemoryTokenCache(),
            token_ttl,
        )

    @classmethod
    def from_settings(cls, settings: WhatsAppSettings) -> SerproProvider:
        cache: TokenCache = (
            RedisTokenCache(settings.redis_url) if settings.redis_url else MemoryTokenCache()
        )
        return cls(
            settings.serpro_base_url,
            settings.serpro_client_id,
            settings.serpro_client_secret,
            settings.serpro_waba_id,
            timeout=settings.http_timeout,
            read_receipt_path=settings.serpro_read_receipt_path,
            recipient_plus=settings.serpro_recipient_plus,
            token_cache=cache,
            token_ttl=settings.serpro_token_ttl,
        )

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=100)
            )
        return self._session

    async def start(self) -> None:
        self.session()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any, bytes]:
        """An authenticated request; one re-authentication and retry on 401."""
        for attempt in (1, 2):
            token = await self.tokens.token()
            headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
            try:
                async with self.session().request(
                    method, url, headers=headers, **kwargs
                ) as response:
                    raw = await response.read()
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise WhatsAppApiError.network(exc) from exc
            if status == 401 and attempt == 1:
                logger.info("Serpro refused the token (401); authenticating again")
                await self.tokens.invalidate()
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
                continue
            try:
                data = json.loads(raw) if raw else {}
            except ValueError:
                data = {}
            if status >= 300:
                raise error_from(status, data)
            return status, data, raw
        raise AssertionError("unreachable")

    async def send(self, to: str, message: OutMessage) -> str | None:
        if is_bsuid(to):
            # Serpro documents no way to address a BSUID: "destinatario" stays a phone.
            logger.error(
                "Serpro: only the business-scoped user id %s is known for this citizen (no "
                "phone); Serpro cannot address it, %s not sent",
                mask_id(to),
                type(message).__name__,
            )
            raise WhatsAppApiError(
                BSUID_UNSUPPORTED_CODE,
                "Serpro: no phone known for a BSUID-only citizen",
                http_status=400,
            )
        request = serpro_request(to, message, self.waba_id, self._plus)
        if request is None:
            logger.warning(
                "Serpro cannot carry a %s message; not sent to %s",
                type(message).__name__,
                mask_phone(to),
            )
            return None
        if request.degraded:
            logger.warning("Serpro: %s for %s", request.degraded, mask_phone(to))
        _, data, _ = await self.request(
            "POST", f"{self.api}/requisicao/{request.endpoint}", json=request.body
        )
        request_id = None
        if isinstance(data, dict):
            request_id = data.get("idRequisicao") or data.get("id")
        logger.info(
            "Serpro accepted %s for %s (idRequisicao %s)",
            request.endpoint,
            mask_phone(to),
            request_id,
        )
        return str(request_id) if request_id else None

    async def mark_read(self, message_id: str, typing: bool = False) -> None:
        # Serpro documents no typing indicator; only the read receipt is sent.
        await self.request("POST", f"{self.api}/{self._read_path}", json={"message_id": message_id})

    async def download_media(self, media_id: str) -> tuple[bytes, str]:
        url = f"{self.api}/media/{media_id}"
        for attempt in (1, 2):
            token = await self.tokens.token()
            try:
                async with self.session().get(
                    url, headers={"Authorization": f"Bearer {token}"}
                ) as response:
                    if response.status == 401 and attempt == 1:
                        await self.tokens.invalidate()
                        continue
                    if response.status >= 300:
                        raise WhatsAppApiError(
                            0,
                            f"media download failed: HTTP {response.status}",
                            http_status=response.status,
                        )
                    return await response.read(), response.content_type
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise WhatsAppApiError.network(exc) from exc
        raise WhatsAppApiError(0, "media download refused twice (401)", http_status=401)
