"""Webhook JSON ▸ typed events. Pure functions: no I/O, no exceptions for odd payloads.

The Cloud API posts ``{"object": "whatsapp_business_account", "entry": [{"changes":
[{"value": {...}}]}]}``; Serpro posts the inner ``value`` object alone (with extras such as
``delay`` and ``idRequisicao``), a list of them (each possibly wrapped as ``{"body": ...}``)
or ``{"data": [...]}``. Every value, and every message, status and error in it, is read —
a batch is never cut to its first item. An item that cannot be read is reported as a
problem and skipped; the rest of the batch still counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.addons.whatsapp.errors import WhatsAppError
from bot.addons.whatsapp.inbound import fields
from bot.addons.whatsapp.inbound.events import (
    ErrorDetail,
    FieldEvent,
    InboundMessage,
    MessageType,
    Pricing,
    StatusState,
    StatusUpdate,
    WebhookError,
    WebhookEvent,
)

CLOUD_OBJECT = "whatsapp_business_account"
MESSAGES_FIELD = "messages"


class PayloadError(WhatsAppError):
    """The webhook body as a whole is not something we accept (answered with 400)."""


@dataclass
class ParseResult:
    """The events found in one webhook body, and what could not be read."""

    events: list[WebhookEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def cloud_changes(payload: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every ``(field, value)`` of ``entry[].changes[]`` of a Cloud API webhook.

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
                # Before 2026 a change without "field" was always "messages".
                yield str(change.get("field") or MESSAGES_FIELD), value


def cloud_values(payload: Any) -> Iterator[Mapping[str, Any]]:
    """Every ``entry[].changes[].value`` of a Cloud API webhook, whatever its field.

    Raises:
        PayloadError: when the body is not a ``whatsapp_business_account`` object.
    """
    for _field, value in cloud_changes(payload):
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
    """Turn ``value`` objects of the ``messages`` field into events (Serpro posts only
    those); unreadable items become problems."""
    result = ParseResult()
    for value in values:
        _parse_value(value, result)
    return result


def parse_changes(changes: Iterator[tuple[str, Mapping[str, Any]]]) -> ParseResult:
    """Turn ``(field, value)`` changes into events. Only ``messages`` yields messages to
    answer; the other fields the bot acts on become their own events, and every other
    field a :class:`FieldEvent` (LIMITS.md §8.5)."""
    result = ParseResult()
    for name, value in changes:
        parser = _FIELD_PARSERS.get(name)
        if parser is None:
            result.events.append(FieldEvent(name))
        else:
            parser(value, result)
    return result


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _phone_number_id(value: Mapping[str, Any]) -> str:
    metadata = value.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("phone_number_id"):
        return str(metadata["phone_number_id"])
    # Some Serpro captures put the metadata fields at the top level.
    return str(value.get("phone_number_id", ""))


@dataclass(frozen=True)
class _Profile:
    name: str | None = None
    username: str = ""
    parent_user_id: str = ""


def _profiles(value: Mapping[str, Any]) -> dict[str, _Profile]:
    """``contacts[]`` by each identifier it carries (``wa_id``, ``user_id``)."""
    profiles: dict[str, _Profile] = {}
    contacts = value.get("contacts")
    for contact in contacts if isinstance(contacts, list) else []:
        if not isinstance(contact, Mapping):
            continue
        profile = contact.get("profile")
        profile = profile if isinstance(profile, Mapping) else {}
        name = profile.get("name")
        entry = _Profile(
            name if isinstance(name, str) else None,
            _text(profile.get("username")),
            _text(contact.get("parent_user_id")),
        )
        for key in ("wa_id", "user_id"):
            if _text(contact.get(key)):
                profiles[contact[key]] = entry
    return profiles


def _status_parent(status: Mapping[str, Any]) -> str:
    # Renamed twice in 2026 (LIMITS.md §8.1): accept all three spellings.
    for key in ("recipient_parent_user_id", "parent_recipient_user_id", "parent_user_id"):
        if _text(status.get(key)):
            return str(status[key])
    return ""


def _pricing(status: Mapping[str, Any]) -> Pricing | None:
    pricing = status.get("pricing")
    if not isinstance(pricing, Mapping):
        return None
    return Pricing(
        category=_text(pricing.get("category")) or "unknown",
        type=_text(pricing.get("type")) or "unknown",
        billable=pricing.get("billable") is not False,
    )


def _parse_value(value: Mapping[str, Any], result: ParseResult) -> None:
    phone_number_id = _phone_number_id(value)
    profiles = _profiles(value)

    messages = value.get("messages")
    for index, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, Mapping):
            result.problems.append(f"messages[{index}] is not an object")
            continue
        wamid = message.get("id")
        phone, user_id = _text(message.get("from")), _text(message.get("from_user_id"))
        if not (phone or user_id) and message.get("type") == "system":
            # user_changed_user_id names the citizen only by the BSUID they had.
            system = message.get("system")
            user_id = _text(system.get("previous_user_id")) if isinstance(system, Mapping) else ""
        if not isinstance(wamid, str) or not wamid or not (phone or user_id):
            result.problems.append(f"messages[{index}] has no 'id' or no 'from'/'from_user_id'")
            continue
        profile = profiles.get(user_id) or profiles.get(phone) or _Profile()
        result.events.append(
            InboundMessage(
                wamid=wamid,
                wa_id=phone or user_id,
                type=MessageType(str(message.get("type", "unknown"))),
                timestamp=str(message.get("timestamp", "")),
                phone_number_id=phone_number_id,
                profile_name=profile.name,
                data=message,
                phone=phone,
                user_id=user_id,
                parent_user_id=_text(message.get("from_parent_user_id")) or profile.parent_user_id,
                username=profile.username,
                group_id=_text(message.get("group_id")),
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
                recipient_user_id=_text(status.get("recipient_user_id")),
                pricing=_pricing(status),
            )
        )

    errors = value.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, Mapping):
            result.events.append(WebhookError(ErrorDetail.from_dict(error), phone_number_id))


_FIELD_PARSERS: dict[str, Callable[[Mapping[str, Any], ParseResult], None]] = {
    MESSAGES_FIELD: _parse_value,
    "standby": fields.parse_standby,
    "messaging_handovers": fields.parse_handover,
    "user_preferences": fields.parse_preferences,
    "user_id_update": fields.parse_user_id_update,
    "message_template_status_update": fields.parse_template_status,
    "account_update": fields.parse_account_update,
}
