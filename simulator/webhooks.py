"""Meta-format webhooks the simulator sends to the channel, signed like Meta signs them."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

from bot.addons.whatsapp.inbound.identity import BSUID

WABA_ID = "100000000000001"
DISPLAY_PHONE_NUMBER = "15550001111"
_counter = itertools.count(1)


def new_wamid() -> str:
    """A fresh, unique message id in Meta's ``wamid.`` form."""
    return f"wamid.SIM{next(_counter):06d}{uuid.uuid4().hex[:12].upper()}"


def envelope(phone_number_id: str, value: dict[str, Any]) -> dict[str, Any]:
    """Wrap a ``value`` in Meta's ``object/entry/changes`` envelope."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": DISPLAY_PHONE_NUMBER,
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def is_bsuid(value: str) -> bool:
    """Whether ``value`` is a business-scoped user id, by the channel's own rule."""
    return BSUID.match(value) is not None


def message_webhook(
    phone_number_id: str,
    wa_id: str,
    name: str,
    message: dict[str, Any],
    wamid: str | None = None,
    username: str = "",
) -> tuple[str, dict[str, Any]]:
    """A user message webhook; ``message`` is ``{"type": ..., <type>: {...}}`` (+ context).

    ``wa_id`` may be a business-scoped user id: the webhook is then the one Meta sends for a
    citizen with a username whose phone is withheld (no ``from``, no ``wa_id``; LIMITS.md
    §8.1, fixture ``inbound_text_bsuid_only.json``).

    Returns:
        The message's wamid and the webhook body.
    """
    wamid = wamid or new_wamid()
    profile: dict[str, Any] = {"name": name}
    if username:
        profile["username"] = username
    if is_bsuid(wa_id):
        contact: dict[str, Any] = {"profile": profile, "user_id": wa_id}
        sender = {"from_user_id": wa_id}
    else:
        contact, sender = {"profile": profile, "wa_id": wa_id}, {"from": wa_id}
    body = envelope(
        phone_number_id,
        {
            "contacts": [contact],
            "messages": [{**sender, "id": wamid, "timestamp": str(int(time.time())), **message}],
        },
    )
    return wamid, body


def status_webhook(phone_number_id: str, wamid: str, recipient: str, status: str) -> dict[str, Any]:
    """A delivery status for a message the bot sent (to a phone, or to a BSUID)."""
    addressed = (
        {"recipient_user_id": recipient} if is_bsuid(recipient) else {"recipient_id": recipient}
    )
    pricing = {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "service"}
    return envelope(
        phone_number_id,
        {
            "statuses": [
                {
                    "id": wamid,
                    "status": status,
                    "timestamp": str(int(time.time())),
                    **addressed,
                    # Meta prices "sent" and one of delivered/read (LIMITS.md §8.4).
                    **({"pricing": pricing} if status in ("sent", "delivered") else {}),
                }
            ]
        },
    )


def user_message(action: dict[str, Any]) -> dict[str, Any]:
    """The ``messages[]`` object for a user action from the page or the JSON API.

    Raises:
        ValueError: for an unknown action.
    """
    kind = action.get("kind", "text")
    if kind == "text":
        return {"type": "text", "text": {"body": str(action.get("text", ""))}}
    if kind in ("button_reply", "list_reply"):
        reply = {"id": str(action["id"]), "title": str(action.get("title", ""))}
        if kind == "list_reply" and action.get("description"):
            reply["description"] = str(action["description"])
        message: dict[str, Any] = {
            "type": "interactive",
            "interactive": {"type": kind, kind: reply},
        }
        if action.get("context"):
            message["context"] = {"from": DISPLAY_PHONE_NUMBER, "id": str(action["context"])}
        return message
    if kind == "location":
        location: dict[str, Any] = {
            "latitude": float(action["latitude"]),
            "longitude": float(action["longitude"]),
        }
        for key in ("name", "address"):
            if action.get(key):
                location[key] = str(action[key])
        return {"type": "location", "location": location}
    if kind == "image":
        image = {
            "mime_type": str(action.get("mime_type", "image/png")),
            "sha256": "SIMULATED",
            "id": str(action["media_id"]),
        }
        if action.get("caption"):
            image["caption"] = str(action["caption"])
        return {"type": "image", "image": image}
    if kind == "audio":  # a voice note recorded in WhatsApp, or an audio file
        audio = {
            "mime_type": str(action.get("mime_type") or "audio/ogg; codecs=opus"),
            "sha256": "SIMULATED",
            "id": str(action["media_id"]),
            "voice": bool(action.get("voice", True)),
        }
        return {"type": "audio", "audio": audio}
    raise ValueError(f"unknown action kind {kind!r}")
