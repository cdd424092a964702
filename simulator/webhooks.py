"""Meta-format webhooks the simulator sends to the channel, signed like Meta signs them."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

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


def message_webhook(
    phone_number_id: str, wa_id: str, name: str, message: dict[str, Any], wamid: str | None = None
) -> tuple[str, dict[str, Any]]:
    """A user message webhook; ``message`` is ``{"type": ..., <type>: {...}}`` (+ context).

    Returns:
        The message's wamid and the webhook body.
    """
    wamid = wamid or new_wamid()
    body = envelope(
        phone_number_id,
        {
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [
                {"from": wa_id, "id": wamid, "timestamp": str(int(time.time())), **message}
            ],
        },
    )
    return wamid, body


def status_webhook(phone_number_id: str, wamid: str, recipient: str, status: str) -> dict[str, Any]:
    """A delivery status for a message the bot sent."""
    return envelope(
        phone_number_id,
        {
            "statuses": [
                {
                    "id": wamid,
                    "status": status,
                    "timestamp": str(int(time.time())),
                    "recipient_id": recipient,
                    "pricing": {"billable": True, "pricing_model": "PMP", "category": "service"},
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
    raise ValueError(f"unknown action kind {kind!r}")
