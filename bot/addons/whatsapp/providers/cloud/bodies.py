"""``messages.py`` objects ▸ Graph API ``/messages`` request bodies. Pure functions."""

from __future__ import annotations

from typing import Any

from bot.addons.whatsapp.inbound.identity import is_bsuid
from bot.addons.whatsapp.outbound.messages import (
    CtaUrl,
    Custom,
    ListMessage,
    Media,
    OutMessage,
    ReplyButtons,
    Text,
    sections_as_dicts,
)


def recipient(wa_id: str) -> str:
    """``to`` with the ``+`` Meta asks for (without it, the business's country code is added)."""
    return wa_id if wa_id.startswith("+") else "+" + wa_id


def addressing(address: str) -> dict[str, str]:
    """``{"to": "+<phone>"}`` for a phone, ``{"recipient": <BSUID>}`` for a business-scoped
    user id (LIMITS.md §8.1): a BSUID is sent whole, never phone-normalised."""
    if is_bsuid(address):
        return {"recipient": address}
    return {"to": recipient(address)}


def _frame(header: str | None, body: str, footer: str | None) -> dict[str, Any]:
    interactive: dict[str, Any] = {}
    if header:
        interactive["header"] = {"type": "text", "text": header}
    interactive["body"] = {"text": body}
    if footer:
        interactive["footer"] = {"text": footer}
    return interactive


def message_object(message: OutMessage) -> dict[str, Any]:
    """``{"type": ..., <type>: {...}}`` for a message, without the envelope."""
    if isinstance(message, Text):
        return {"type": "text", "text": {"preview_url": message.preview_url, "body": message.body}}
    if isinstance(message, ReplyButtons):
        interactive = {"type": "button", **_frame(message.header, message.body, message.footer)}
        interactive["action"] = {
            "buttons": [
                {"type": "reply", "reply": {"id": b.id, "title": b.title}} for b in message.buttons
            ]
        }
        return {"type": "interactive", "interactive": interactive}
    if isinstance(message, ListMessage):
        interactive = {"type": "list", **_frame(message.header, message.body, message.footer)}
        sections = sections_as_dicts(message.sections)
        interactive["action"] = {"button": message.button_label, "sections": sections}
        return {"type": "interactive", "interactive": interactive}
    if isinstance(message, CtaUrl):
        interactive = {"type": "cta_url", **_frame(message.header, message.body, message.footer)}
        interactive["action"] = {
            "name": "cta_url",
            "parameters": {"display_text": message.display_text, "url": message.url},
        }
        return {"type": "interactive", "interactive": interactive}
    if isinstance(message, Media):
        media: dict[str, Any] = (
            {"id": message.media_id} if message.media_id else {"link": message.link}
        )
        if message.filename and message.media_type == "document":
            media["filename"] = message.filename
        if message.caption:
            media["caption"] = message.caption
        return {"type": message.media_type, message.media_type: media}
    if isinstance(message, Custom):
        return dict(message.body)
    raise TypeError(f"not a WhatsApp message: {message!r}")


def cloud_body(to: str, message: OutMessage) -> dict[str, Any]:
    """The whole JSON body of ``POST /{phone-number-id}/messages``; ``to`` is a phone or
    a BSUID."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        **addressing(to),
        **message_object(message),
    }


def mark_read_body(wamid: str, typing: bool) -> dict[str, Any]:
    """Mark a received message read, optionally with the typing indicator."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
    if typing:
        body["typing_indicator"] = {"type": "text"}
    return body
