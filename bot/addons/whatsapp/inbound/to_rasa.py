"""Inbound mapping: an :class:`InboundMessage` ▸ the text and metadata of a Rasa ``UserMessage``.

Pure functions. Text becomes its body; a tapped reply button or list row becomes its id,
which is the Rasa payload the output side put there (e.g. ``/choose_service{"service":
"iptu"}``); a template quick reply becomes its payload. Everything else becomes an intent
payload with entities, so designers can write stories for it:

================================  =====================================================
WhatsApp message                  Rasa receives (default intent names)
================================  =====================================================
location                          ``/share_location{"latitude", "longitude",
                                  "location_name", "address"}``
image, audio, video, document,    ``/send_media{"media_type", "mime_type", "caption"}``
sticker
reaction                          ``/react{"emoji", "reaction", "reacted_message_id"}``
                                  (+ ``"feedback"``, added by the turn, see
                                  :mod:`~bot.addons.whatsapp.inbound.quiet`)
deleted message (``revoke``)      ``/message_deleted{"deleted_message_id"}``
edited message (``edit``)         ``/message_edited{"edited_message_id", "edited_text"}``
call permission reply             ``/call_permission_reply{"call_permission"}``
contacts, flow reply, order,      ``/unsupported_message{"message_type"}``
unsupported, unknown
================================  =====================================================

System notices never reach Rasa (:mod:`~bot.addons.whatsapp.inbound.triage`).

The raw details (media id, flow response, shared contacts, …) are in
``metadata["whatsapp"]`` for actions to use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bot.addons.whatsapp.config import InboundIntents
from bot.addons.whatsapp.inbound import quiet
from bot.addons.whatsapp.inbound.events import InboundMessage, MessageType

MEDIA_TYPES = {
    MessageType.IMAGE,
    MessageType.AUDIO,
    MessageType.VIDEO,
    MessageType.DOCUMENT,
    MessageType.STICKER,
}


def intent_payload(intent: str, entities: Mapping[str, Any]) -> str:
    """``/intent{"entity": value}``, the form Rasa parses without running NLU."""
    kept = {key: value for key, value in entities.items() if value not in (None, "")}
    if not kept:
        return f"/{intent}"
    return f"/{intent}{json.dumps(kept, ensure_ascii=False, separators=(',', ':'))}"


def _section(message: InboundMessage, key: str) -> Mapping[str, Any]:
    section = message.data.get(key)
    return section if isinstance(section, Mapping) else {}


def reply_id(message: InboundMessage) -> str | None:
    """The id of a tapped reply button or list row, if the message is one."""
    if message.type is not MessageType.INTERACTIVE:
        return None
    interactive = _section(message, "interactive")
    for kind in ("button_reply", "list_reply"):
        reply = interactive.get(kind)
        if isinstance(reply, Mapping) and isinstance(reply.get("id"), str):
            return str(reply["id"])
    return None


def reaction_text(message: InboundMessage, intents: InboundIntents, feedback: str = "") -> str:
    """``/react{"emoji", "reaction", "reacted_message_id", "feedback"}``; ``feedback``
    (``positive``/``negative``) only when the turn found the reaction answers the feedback
    question."""
    emoji = quiet.reaction_emoji(message)
    return intent_payload(
        intents.reaction,
        {
            "emoji": emoji,
            "reaction": quiet.reaction_sentiment(emoji),
            "reacted_message_id": quiet.reacted_message_id(message),
            "feedback": feedback,
        },
    )


def user_text(message: InboundMessage, intents: InboundIntents) -> str:
    """The text Rasa receives for ``message`` (see the module table)."""
    kind = message.type
    if kind is MessageType.TEXT:
        return str(_section(message, "text").get("body", ""))
    if kind is MessageType.INTERACTIVE:
        replied = reply_id(message)
        if replied is not None:
            return replied
        interactive = _section(message, "interactive")
        nfm = interactive.get("nfm_reply")
        if isinstance(nfm, Mapping):
            return intent_payload(intents.flow_reply, {"message_type": "flow_reply"})
        if quiet.quiet_kind(message) == quiet.CALL_PERMISSION_REPLY:
            return intent_payload(
                intents.call_permission,
                {"call_permission": quiet.call_permission_response(message)},
            )
        return intent_payload(intents.unsupported, {"message_type": "interactive"})
    if kind is MessageType.BUTTON:
        button = _section(message, "button")
        return str(button.get("payload") or button.get("text") or "")
    if kind is MessageType.LOCATION:
        location = _section(message, "location")
        return intent_payload(
            intents.location,
            {
                "latitude": location.get("latitude"),
                "longitude": location.get("longitude"),
                "location_name": location.get("name"),
                "address": location.get("address"),
            },
        )
    if kind in MEDIA_TYPES:
        media = _section(message, kind.value)
        return intent_payload(
            intents.media,
            {
                "media_type": kind.value,
                "mime_type": media.get("mime_type"),
                "caption": media.get("caption"),
            },
        )
    if kind is MessageType.REACTION:
        return reaction_text(message, intents)
    if kind is MessageType.REVOKE:
        return intent_payload(intents.deleted, {"deleted_message_id": quiet.original_id(message)})
    if kind is MessageType.EDIT:
        return intent_payload(
            intents.edited,
            {
                "edited_message_id": quiet.original_id(message),
                "edited_text": quiet.edited_text(message),
            },
        )
    intent = {
        MessageType.CONTACTS: intents.contacts,
        MessageType.ORDER: intents.order,
    }.get(kind, intents.unsupported)
    return intent_payload(intent, {"message_type": str(message.data.get("type", kind.value))})


def whatsapp_metadata(message: InboundMessage) -> dict[str, Any]:
    """What actions find in ``tracker.latest_message["metadata"]["whatsapp"]``."""
    data = message.data
    context = data.get("context") if isinstance(data.get("context"), Mapping) else {}
    meta: dict[str, Any] = {
        "wamid": message.wamid,
        "wa_id": message.wa_id,
        "phone_number_id": message.phone_number_id,
        "profile_name": message.profile_name,
        # 2026: who the citizen is besides the conversation key; without a phone, an
        # action that needs one must ask for it (e.g. a contact request).
        "phone": message.phone or None,
        "phone_known": bool(message.phone),
        "user_id": message.user_id or None,
        "parent_user_id": message.parent_user_id or None,
        "username": message.username or None,
        "timestamp": message.timestamp,
        "type": str(data.get("type", message.type.value)),
        "context": dict(context) if context else None,
        "referral": data.get("referral"),
        "forwarded": bool(context.get("forwarded")) if context else False,
        "frequently_forwarded": bool(context.get("frequently_forwarded")) if context else False,
    }
    if message.type in MEDIA_TYPES:
        media = _section(message, message.type.value)
        meta["media"] = {
            key: media.get(key)
            for key in ("id", "mime_type", "sha256", "filename", "caption", "url", "animated")
            if key in media
        }
        if message.type is MessageType.AUDIO:
            meta["media"]["voice"] = bool(media.get("voice"))
    for key in (
        "location",
        "contacts",
        "reaction",
        "order",
        "interactive",
        "button",
        "system",
        "revoke",
        "edit",
        "edited",
    ):
        if key in data:
            meta[key] = data[key]
    if "errors" in data:
        meta["errors"] = data["errors"]
    return meta
