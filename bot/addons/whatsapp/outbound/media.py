"""``image`` and ``attachment`` ▸ media messages. Pure functions.

The media type is the one given, else guessed from the file extension (a document
otherwise, which keeps its file name); captions go only where WhatsApp allows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.outbound.messages import Media, MediaType
from bot.addons.whatsapp.outbound.text import cut

if TYPE_CHECKING:  # convert.py imports this module; the type only annotates
    from bot.addons.whatsapp.outbound.convert import Conversion

EXTENSION_TYPES: dict[str, MediaType] = {
    **dict.fromkeys(("jpg", "jpeg", "png"), "image"),
    "webp": "sticker",
    **dict.fromkeys(("mp4", "3gp", "3gpp"), "video"),
    **dict.fromkeys(("mp3", "ogg", "opus", "aac", "amr", "m4a"), "audio"),
}


def media_type_for(url: str, explicit: str | None = None) -> MediaType:
    """The WhatsApp media type for an attachment: explicit, else by file extension."""
    if explicit in limits.MEDIA_TYPES:
        return explicit  # type: ignore[return-value]
    extension = urlparse(url).path.rsplit(".", 1)[-1].lower() if "." in urlparse(url).path else ""
    return EXTENSION_TYPES.get(extension, "document")


def media(
    media_type: MediaType, link: str, caption: str | None, filename: str | None = None
) -> Media:
    """A media message by link; the caption is dropped for types that cannot have one."""
    allowed_caption = caption if media_type in limits.CAPTION_MEDIA_TYPES else None
    return Media(
        media_type=media_type, link=link, caption=allowed_caption or None, filename=filename
    )


def add_attachment(attachment: Any, conversion: Conversion) -> None:
    """Append the media message for a response's ``attachment`` (a URL or a mapping)."""
    if isinstance(attachment, str):
        spec: Mapping[str, Any] = {"url": attachment}
    elif isinstance(attachment, Mapping):
        spec = attachment
    else:
        conversion.problems.append(
            f"attachment must be a URL or a mapping, not {type(attachment).__name__}"
        )
        return
    link = spec.get("url") or spec.get("link")
    if not isinstance(link, str) or not link:
        conversion.problems.append("attachment has no 'url'")
        return
    media_type = media_type_for(link, spec.get("type"))
    filename = spec.get("filename")
    if media_type == "document" and not filename:
        filename = unquote(urlparse(link).path.rsplit("/", 1)[-1]) or None
    caption = spec.get("caption")
    conversion.messages.append(
        media(
            media_type,
            link,
            cut(str(caption), limits.MEDIA_CAPTION_MAX) if caption else None,
            filename if media_type == "document" else None,
        )
    )
