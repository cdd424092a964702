"""Forward one citizen message to the agent's Chatwoot conversation while the bot is paused.

Text, taps and locations (with a map link) go as text (:func:`describe`). Media (image,
audio, video, document, sticker) is downloaded from WhatsApp with the channel's provider
(the same call as :func:`bot.addons.whatsapp.providers.media.download_media`) and uploaded
to Chatwoot as the message's attachment (``attachments[]``), so the agent opens the file in
Chatwoot without WhatsApp's token. Over ``HANDOFF_ATTACHMENT_MAX_BYTES``, or when the
download fails, the agent gets the description and the reason instead: the message is
never lost for a file.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.addons.whatsapp.handoff.client import ChatwootClient
from bot.addons.whatsapp.handoff.describe import KINDS, describe
from bot.addons.whatsapp.inbound.events import InboundMessage
from bot.addons.whatsapp.inbound.to_rasa import MEDIA_TYPES

logger = logging.getLogger(__name__)

Download = Callable[[str], Awaitable[tuple[bytes, str]]]


@dataclass(frozen=True)
class File:
    """What Chatwoot gets for a media message: the words and the file to attach."""

    content: str
    filename: str


def file_of(message: InboundMessage, mime_type: str) -> File:
    """The attachment's caption and file name (pure): the document's own name, else the
    kind and the message id with the extension of ``mime_type``."""
    media = message.data.get(message.type.value)
    media = media if isinstance(media, dict) else {}
    kind = KINDS[message.type]
    caption = str(media.get("caption") or "").strip()
    content = f"[{kind}] {caption}" if caption else f"[{kind}]"
    filename = str(media.get("filename") or "").strip()
    if not filename:
        base = mime_type.split(";")[0].strip()
        extension = {"audio/ogg": ".ogg", "image/jpeg": ".jpg"}.get(base)
        extension = extension or mimetypes.guess_extension(base) or ""
        filename = f"{message.type.value}-{message.wamid[-12:].strip('.=')}{extension}"
    return File(content, filename)


def size_text(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MB"


async def forward(
    client: ChatwootClient,
    download: Download,
    conversation: int,
    message: InboundMessage,
    max_bytes: int,
) -> None:
    """Post ``message`` to ``conversation``; the file attached when it can be.

    Raises:
        ChatwootError: Chatwoot refused or could not be reached (the caller resumes).
    """
    text = describe(message)
    media = message.data.get(message.type.value)
    media_id = str(media.get("id") or "") if isinstance(media, dict) else ""
    if message.type not in MEDIA_TYPES or not media_id or max_bytes <= 0:
        await client.post(conversation, text)
        return
    try:
        data, mime_type = await download(media_id)
    except Exception as exc:  # any provider failure: the agent still gets the message
        logger.warning("Could not download %s for the agent: %s", message.wamid, exc)
        await client.post(conversation, f"{text}\n(O arquivo não pôde ser baixado do WhatsApp.)")
        return
    if len(data) > max_bytes:
        reason = f"{size_text(len(data))}, acima do limite de {size_text(max_bytes)}"
        await client.post(conversation, f"{text}\n(Arquivo grande demais para anexar: {reason}.)")
        return
    file = file_of(message, mime_type)
    await client.post_file(conversation, file.content, file.filename, mime_type, data)
