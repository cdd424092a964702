"""Webhook fields other than ``messages`` ▸ events (LIMITS.md §8.5). Pure functions.

Only ``messages`` carries messages to answer; these fields change what the channel knows:
``standby`` (copies of a thread another app owns), ``messaging_handovers``,
``user_preferences``, ``user_id_update``, ``message_template_status_update`` and
``account_update``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from bot.addons.whatsapp.inbound.events import (
    Citizen,
    Handover,
    IdentityUpdate,
    OperatorAlert,
    PreferenceUpdate,
    Standby,
    WebhookEvent,
)


class Result(Protocol):
    """Where parsed events and problems go (:class:`~.parse.ParseResult`)."""

    events: list[WebhookEvent]
    problems: list[str]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _citizen(item: Mapping[str, Any]) -> Citizen:
    return Citizen(
        phone=_text(item.get("wa_id")) or _text(item.get("from")),
        user_id=_text(item.get("user_id")) or _text(item.get("from_user_id")),
        parent_user_id=_text(item.get("parent_user_id")),
    )


def parse_standby(value: Mapping[str, Any], result: Result) -> None:
    inner = value.get("standby")
    inner = inner if isinstance(inner, Mapping) else {}
    messages = inner.get("messages")
    messages = [m for m in messages if isinstance(m, Mapping)] if isinstance(messages, list) else []
    citizens = tuple(dict.fromkeys(_citizen(m) for m in messages if _citizen(m)))
    result.events.append(Standby(citizens, len(messages)))


def parse_handover(value: Mapping[str, Any], result: Result) -> None:
    kind = _text(value.get("type"))
    sender = value.get("sender")
    sender = sender if isinstance(sender, Mapping) else {}
    citizen = Citizen(
        phone=_text(sender.get("phone_number")) or _text(sender.get("wa_id")),
        user_id=_text(sender.get("user_id")),
    )
    if kind not in ("control_passed", "control_taken") or not (citizen.phone or citizen.user_id):
        result.problems.append(f"messaging_handovers of type {kind!r} names no citizen")
        return
    detail = value.get(kind)
    detail = detail if isinstance(detail, Mapping) else {}
    app_id = detail.get("previous_owner_app_id") or detail.get("new_owner_app_id") or ""
    result.events.append(Handover(kind, citizen, str(app_id)))


def parse_preferences(value: Mapping[str, Any], result: Result) -> None:
    preferences = value.get("user_preferences")
    for index, item in enumerate(preferences if isinstance(preferences, list) else []):
        if not isinstance(item, Mapping) or not _citizen(item):
            result.problems.append(f"user_preferences[{index}] names no citizen")
            continue
        result.events.append(
            PreferenceUpdate(
                _citizen(item),
                _text(item.get("category")) or "unknown",
                _text(item.get("value")) or "unknown",
            )
        )


def parse_user_id_update(value: Mapping[str, Any], result: Result) -> None:
    updates = value.get("user_id_update")
    for index, item in enumerate(updates if isinstance(updates, list) else []):
        user = item.get("user_id") if isinstance(item, Mapping) else None
        if not isinstance(user, Mapping) or not _text(user.get("previous")):
            result.problems.append(f"user_id_update[{index}] has no user_id.previous")
            continue
        parent = item.get("parent_user_id")
        parent = parent if isinstance(parent, Mapping) else {}
        current = Citizen(
            phone=_text(item.get("wa_id")),
            user_id=_text(user.get("current")),
            parent_user_id=_text(parent.get("current")),
        )
        result.events.append(IdentityUpdate(str(user["previous"]), current))


def parse_template_status(value: Mapping[str, Any], result: Result) -> None:
    other = value.get("other_info")
    other = other if isinstance(other, Mapping) else {}
    result.events.append(
        OperatorAlert(
            field="message_template_status_update",
            event=_text(value.get("event")) or "unknown",
            template=_text(value.get("message_template_name")),
            detail=" ".join(
                part
                for part in (
                    _text(value.get("reason")),
                    _text(other.get("title")),
                    _text(other.get("description")),
                )
                if part
            ),
        )
    )


def parse_account_update(value: Mapping[str, Any], result: Result) -> None:
    restrictions = value.get("restriction_info")
    detail = ""
    if isinstance(restrictions, list):
        detail = ", ".join(
            _text(r.get("restriction_type")) for r in restrictions if isinstance(r, Mapping)
        )
    result.events.append(
        OperatorAlert(
            field="account_update",
            event=_text(value.get("event")) or "unknown",
            detail=detail or json.dumps(value, ensure_ascii=False)[:300],
        )
    )
