"""The small interface every WhatsApp provider implements.

A provider is the transport only: it turns an
:data:`~bot.addons.whatsapp.outbound.messages.OutMessage` into its own request and sends it,
marks messages read, fetches media. Retries, pacing and ordering live above it
(``outbound/sender.py``), conversion below it (``outbound/convert.py``).
"""

from __future__ import annotations

from typing import Protocol

from bot.addons.whatsapp.outbound.messages import OutMessage


class Provider(Protocol):
    """Transport to WhatsApp: Meta's Graph API (``cloud``) or Serpro (``serpro``)."""

    name: str

    async def start(self) -> None:
        """Open the pooled HTTP session (called once, at server start)."""

    async def close(self) -> None:
        """Close the session (called once, at server stop)."""

    async def send(self, to: str, message: OutMessage) -> str | None:
        """Send one message to ``to`` (the ``wa_id`` as received).

        Returns:
            The provider's id for the sent message (a ``wamid`` for the Cloud API, the
            ``idRequisicao`` for Serpro), or None when the provider gives none.

        Raises:
            WhatsAppApiError: on any failure, network errors included (``http_status=0``).
        """

    async def mark_read(self, message_id: str, typing: bool = False) -> None:
        """Mark an incoming message read, optionally showing the typing indicator."""

    async def download_media(self, media_id: str) -> tuple[bytes, str]:
        """Fetch an incoming media object: returns its bytes and MIME type."""
