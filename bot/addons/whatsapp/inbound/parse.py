"""Webhook JSON ▸ typed events. Pure functions: no I/O, no exceptions for odd payloads.

The Cloud API posts ``{"object": "whatsapp_business_account", "entry": [{"changes":
[{"value": {...}}]}]}``; Serpro posts the inner ``value`` object alone (with extras such as
``delay`` and ``idRequisicao``), a list of them (each possibly wrapped as ``{"body": ...}``)
or ``{"data": [...]}``. Every value, and every message, status and error in it, is read —
a batch is never cut to its first item. An item that cannot be read is reported as a
problem and skipped; the rest of the batch still counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.addons.whatsapp.errors import WhatsAppError
from bot.addons.whatsapp.inbound.events import (
    ErrorDetail,
    InboundMessage,
    MessageType,
    StatusState,
    StatusUpdate,
    WebhookError,
    WebhookEvent,
)

CLOUD_OBJECT = "whatsapp_business_account"


class PayloadError(WhatsAppError):
    """The webhook body as a whole is not something we accept (answered with 400)."""


@dataclass
class ParseResult:
    """The events found in one webhook body, and what could not be read."""

    events: list[WebhookEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def cloud_values(payload: Any) -> Iterator[Mapping[str, Any]]:
    """Every ``entry[].changes[].value`` of a Cloud API webhook.

    Raises:
        PayloadError: when the body is not a ``whatsapp_business_account`` object.
    """
    if not isinstance(payload, Mapping) or payload.get("object") != CLOUD_OBJECT:
        raise PayloadError(f"not a {CLOUD_OBJECT} webhook object")
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise PayloadError("'entry' is missing or not a list")
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, Mapping) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, Mapping) else None
            if isinstance(value, Mapping):
                yield value


def serpro_values(payload: Any) -> Iterator[Mapping[str, Any]]:
    """The ``value``-like objects of a Serpro webhook, in any of its three wrappings.

    Raises:
        PayloadError: when the body holds no object Serpro would send.
    """
    items: Any = payload
    if isinstance(payload, Mapping) and isinstance(payload.get("data"), list):
        items = payload["data"]
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, list):
        raise PayloadError("expected a JSON object, a list of objects or {'data': [...]}")
    found = False
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("body"), Mapping):
            item = item["body"]
        if isinstance(item, Mapping) and any(
            key in item for key in ("messages", "statuses", "errors", "contacts")
        ):
            found = True
            yield item
    if not found:
        raise PayloadError("no messages, statuses or errors in the body")


def parse_values(values: Iterator[Mapping[str, Any]]) -> ParseResult:
    """Turn ``value`` objects into events; unreadable items become problems."""
    result = ParseResult()
    for value in values:
        _parse_value(value, result)
    return result


def _phone_number_id(value: Mapping[str, Any]) -> str:
    metadata = value.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("phone_number_id"):
        return str(metadata["phone_number_id"])
    # Some Serpro captures put the metadata fields at the top level.
    return str(value.get("phone_number_id", ""))


def _profile_names(value: Mapping[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    contacts = value.get("contacts")
    for contact in contacts if isinstance(contacts, list) else []:
        if not isinstance(contact, Mapping):
            continue
        profile = contact.get("profile")
        name = profile.get("name") if isinstance(profile, Mapping) else None
        if contact.get("wa_id") and isinstance(name, str):
            names[str(contact["wa_id"])] = name
    return names


def _parse_value(value: Mapping[str, Any], result: ParseResult) -> None:
    phone_number_id = _phone_number_id(value)
    names = _profile_names(value)

    messages = value.get("messages")
    for index, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, Mapping):
            result.problems.append(f"messages[{index}] is not an object")
            continue
        wamid, sender = message.get("id"), message.get("from")
        if not isinstance(wamid, str) or not wamid or not isinstance(sender, str) or not sender:
            result.problems.append(f"messages[{index}] has no 'id' or 'from'")
            continue
        result.events.append(
            InboundMessage(
                wamid=wamid,
                wa_id=sender,
                type=MessageType(str(message.get("type", "unknown"))),
                timestamp=str(message.get("timestamp", "")),
                phone_number_id=phone_number_id,
                profile_name=names.get(sender),
                data=message,
            )
        )

    statuses = value.get("statuses")
    for index, status in enumerate(statuses if isinstance(statuses, list) else []):
        if not isinstance(status, Mapping) or not isinstance(status.get("id"), str):
            result.problems.append(f"statuses[{index}] has no 'id'")
            continue
        errors = status.get("errors")
        result.events.append(
            StatusUpdate(
                wamid=status["id"],
                status=StatusState(str(status.get("status", "unknown"))),
                recipient_id=str(status.get("recipient_id", "")),
                timestamp=str(status.get("timestamp", "")),
                errors=tuple(
                    ErrorDetail.from_dict(e)
                    for e in (errors if isinstance(errors, list) else [])
                    if isinstance(e, Mapping)
                ),
                phone_number_id=phone_number_id,
            )
        )

    errors = value.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, Mapping):
            result.events.append(WebhookError(ErrorDetail.from_dict(error), phone_number_id))
