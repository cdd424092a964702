"""Meta's WhatsApp Cloud API (Graph API) transport."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.errors import WhatsAppApiError
from bot.addons.whatsapp.outbound.messages import OutMessage
from bot.addons.whatsapp.providers.cloud.bodies import cloud_body, mark_read_body
from bot.addons.whatsapp.providers.cloud.versions import version_warning

logger = logging.getLogger(__name__)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds (only the delta-seconds form is used by Meta)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class CloudProvider:
    """Sends through ``POST {base}/{version}/{phone_number_id}/messages`` with a bearer token.

    One pooled :class:`aiohttp.ClientSession`, opened by :meth:`start` and closed by
    :meth:`close`; every request has a timeout.
    """

    name = "cloud"

    def __init__(
        self,
        base_url: str,
        api_version: str,
        phone_number_id: str,
        access_token: str,
        timeout: float = 10.0,
    ) -> None:
        self._base = f"{base_url.rstrip('/')}/{api_version}"
        self.api_version = api_version
        self._phone_number_id = phone_number_id
        self._token = access_token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: WhatsAppSettings) -> CloudProvider:
        return cls(
            settings.api_base_url,
            settings.api_version,
            settings.phone_number_id,
            settings.access_token,
            settings.http_timeout,
        )

    async def start(self) -> None:
        warning = version_warning(self.api_version)
        if warning:
            logger.warning(warning)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={"Authorization": f"Bearer {self._token}"},
                connector=aiohttp.TCPConnector(limit=100),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            raise RuntimeError("CloudProvider.start() was not called")
        return self._session

    async def _request(self, method: str, url: str, body: Any = None) -> Any:
        try:
            async with self.session.request(method, url, json=body) as response:
                text = await response.text()
                try:
                    data = json.loads(text) if text else {}
                except ValueError:
                    data = {}
                if response.status >= 400:
                    raise WhatsAppApiError.from_response(
                        response.status,
                        data,
                        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                    )
                return data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WhatsAppApiError.network(exc) from exc

    async def send(self, to: str, message: OutMessage) -> str | None:
        return await self.send_body(cloud_body(to, message))

    async def send_body(self, body: dict[str, Any]) -> str | None:
        """POST a ready Graph API body; returns the new message's wamid."""
        data = await self._request("POST", f"{self._base}/{self._phone_number_id}/messages", body)
        messages = data.get("messages") if isinstance(data, dict) else None
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            return str(messages[0].get("id")) if messages[0].get("id") else None
        return None

    async def mark_read(self, message_id: str, typing: bool = False) -> None:
        await self._request(
            "POST",
            f"{self._base}/{self._phone_number_id}/messages",
            mark_read_body(message_id, typing),
        )

    async def download_media(self, media_id: str) -> tuple[bytes, str]:
        info = await self._request("GET", f"{self._base}/{media_id}")
        url = info.get("url") if isinstance(info, dict) else None
        if not isinstance(url, str):
            raise WhatsAppApiError(0, f"media {media_id} has no download URL", http_status=200)
        try:
            async with self.session.get(url) as response:
                if response.status >= 400:
                    raise WhatsAppApiError(
                        0,
                        f"media download failed: HTTP {response.status}",
                        http_status=response.status,
                    )
                content = await response.read()
                return content, str(info.get("mime_type") or response.content_type)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WhatsAppApiError.network(exc) from exc
