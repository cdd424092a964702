"""Downloading a user's media (photo, audio, document) from actions.

Webhooks carry only a media id (``metadata["whatsapp"]["media"]["id"]``); the file is fetched
with the provider's credentials: media id ▸ URL ▸ bytes, with the bearer token. Media ids
from webhooks live 7 days and each download URL 5 minutes, so download when handling the
message. Example in an action::

    media = tracker.latest_message["metadata"]["whatsapp"].get("media")
    if media:
        content, mime_type = await download_media(media["id"])
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.providers import create_provider


async def download_media(
    media_id: str, environ: Mapping[str, str] | None = None
) -> tuple[bytes, str]:
    """The bytes and MIME type of an incoming media object.

    Args:
        media_id: the id from the webhook.
        environ: where the provider's settings are read (``os.environ`` by default, the
            same variables as the channel's).

    Raises:
        ConfigurationError: when the provider's variables are missing.
        WhatsAppApiError: when WhatsApp refuses or cannot be reached.
    """
    settings = WhatsAppSettings.from_credentials({}, os.environ if environ is None else environ)
    provider = create_provider(settings)
    await provider.start()
    try:
        return await provider.download_media(media_id)
    finally:
        await provider.close()
