"""What an agent reads in Chatwoot for each citizen message while the bot is paused (pure).

Text is forwarded as it is; a tapped button or list row as its title; a location as its
coordinates with a map link; media as its kind, caption and WhatsApp media id. That
description is what the agent reads when the file itself cannot be attached
(:mod:`~bot.addons.whatsapp.handoff.forward` uploads it to Chatwoot when it can: WhatsApp's
media link needs the channel's token, which agents must not get).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bot.addons.whatsapp.inbound.events import InboundMessage, MessageType
from bot.addons.whatsapp.inbound.to_rasa import MEDIA_TYPES

KINDS = {
    MessageType.IMAGE: "imagem",
    MessageType.AUDIO: "áudio",
    MessageType.VIDEO: "vídeo",
    MessageType.DOCUMENT: "documento",
    MessageType.STICKER: "figurinha",
}


def _section(message: InboundMessage, key: str) -> Mapping[str, Any]:
    value = message.data.get(key)
    return value if isinstance(value, Mapping) else {}


def plain_text(message: InboundMessage) -> str:
    """The words the citizen sent or tapped ("" for anything else)."""
    if message.type is MessageType.TEXT:
        return str(_section(message, "text").get("body", ""))
    if message.type is MessageType.INTERACTIVE:
        interactive = _section(message, "interactive")
        for kind in ("button_reply", "list_reply"):
            reply = interactive.get(kind)
            if isinstance(reply, Mapping):
                return str(reply.get("title") or reply.get("id") or "")
    if message.type is MessageType.BUTTON:
        button = _section(message, "button")
        return str(button.get("text") or button.get("payload") or "")
    return ""


RATINGS = ("good", "fair", "bad")
RATING_INTENT = "/handoff_rating"


def rating_of(message: InboundMessage) -> str | None:
    """The satisfaction answer a tapped ``utter_handoff_satisfaction`` button carries
    (its id is the payload ``/handoff_rating{"handoff_rating": "good"}``), else None."""
    interactive = _section(message, "interactive")
    reply = interactive.get("button_reply")
    payload = str(reply.get("id") or "") if isinstance(reply, Mapping) else ""
    if not payload.startswith(RATING_INTENT + "{"):
        return None
    try:
        entities = json.loads(payload[len(RATING_INTENT) :])
    except ValueError:
        return None
    rating = entities.get("handoff_rating") if isinstance(entities, dict) else None
    return rating if rating in RATINGS else None


def describe(message: InboundMessage) -> str:
    """The Chatwoot message for ``message``."""
    text = plain_text(message)
    if text:
        return text
    if message.type is MessageType.LOCATION:
        location = _section(message, "location")
        lat, lon = location.get("latitude"), location.get("longitude")
        words = " — ".join(str(location[k]) for k in ("name", "address") if location.get(k))
        link = f"https://www.google.com/maps?q={lat},{lon}"
        return f"📍 Localização: {lat}, {lon}" + (f" ({words})" if words else "") + f"\n{link}"
    if message.type in MEDIA_TYPES:
        media = _section(message, message.type.value)
        parts = [f"[{KINDS[message.type]}]"]
        if media.get("caption"):
            parts.append(str(media["caption"]))
        if media.get("filename"):
            parts.append(str(media["filename"]))
        parts.append(f"(WhatsApp media id {media.get('id', '?')}, {media.get('mime_type', '?')})")
        return " ".join(parts)
    return f"[mensagem do tipo {message.data.get('type', message.type.value)}]"
