"""Typed, frozen events parsed from WhatsApp webhooks (Cloud API and Serpro alike), and
the JSON codec of an :class:`InboundMessage` (the journal and the relay carry it)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Union

from bot.addons.whatsapp.inbound.identity import is_bsuid

logger = logging.getLogger(__name__)


class MessageType(str, Enum):
    """``messages[].type`` as Meta documents it; anything else is ``UNKNOWN``."""

    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    INTERACTIVE = "interactive"
    BUTTON = "button"
    REACTION = "reaction"
    ORDER = "order"
    SYSTEM = "system"
    REVOKE = "revoke"  # the citizen deleted a message (Meta: Business app users only)
    EDIT = "edit"  # the citizen edited a message (Meta: Business app users only)
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"

    @classmethod
    def _missing_(cls, value: object) -> MessageType:
        logger.warning("Unknown WhatsApp message type %r, handled as 'unknown'", value)
        return cls.UNKNOWN


class StatusState(str, Enum):
    """``statuses[].status``; ``played`` is sent for voice notes."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    DELETED = "deleted"
    PLAYED = "played"
    UNKNOWN = "unknown"

    @classmethod
    def _missing_(cls, value: object) -> StatusState:
        logger.warning("Unknown WhatsApp status %r, handled as 'unknown'", value)
        return cls.UNKNOWN


@dataclass(frozen=True)
class ErrorDetail:
    """One entry of an ``errors`` array (value-level, message-level or status-level)."""

    code: int
    title: str = ""
    message: str = ""
    details: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ErrorDetail:
        error_data = data.get("error_data")
        details = error_data.get("details", "") if isinstance(error_data, Mapping) else ""
        code = data.get("code")
        return cls(
            code=code if isinstance(code, int) else 0,
            title=str(data.get("title", "")),
            message=str(data.get("message", "")),
            details=str(details),
        )


@dataclass(frozen=True)
class InboundMessage:
    """A message a WhatsApp user sent to the business number.

    Attributes:
        wamid: the message id, used for deduplication, mark-read and replies.
        wa_id: the conversation key, Rasa's ``sender_id``: as parsed, the phone (``from``)
            or, without one, the BSUID; the intake replaces it with the key the identity
            map gives (:mod:`bot.addons.whatsapp.inbound.identity`). Replies are addressed
            through that map, never to this string directly.
        type: the message type.
        timestamp: Unix time as a string, as Meta sends it.
        phone_number_id: the business number that received it.
        profile_name: the sender's profile name, when Meta gives it.
        data: the message object itself, for type-specific fields.
        phone: the sender's phone (``from``), "" when WhatsApp withheld it (a username
            user).
        user_id: the sender's business-scoped user id (``from_user_id``), "" before 2026.
        parent_user_id: the parent BSUID, when the business enabled them.
        username: the sender's WhatsApp username, for display only.
        group_id: set when the message was written in a group chat.
    """

    wamid: str
    wa_id: str
    type: MessageType
    timestamp: str = ""
    phone_number_id: str = ""
    profile_name: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, hash=False, compare=False)
    phone: str = ""
    user_id: str = ""
    parent_user_id: str = ""
    username: str = ""
    group_id: str = ""


@dataclass(frozen=True)
class Pricing:
    """A status's ``pricing`` object: how Meta bills the message (LIMITS.md §8.4)."""

    category: str
    type: str
    billable: bool


def message_fields(message: InboundMessage) -> dict[str, Any]:
    """A message as plain JSON values, enough to run its turn again (journal, relay)."""
    return {
        "wamid": message.wamid,
        "wa_id": message.wa_id,
        "type": message.type.value,
        "timestamp": message.timestamp,
        "phone_number_id": message.phone_number_id,
        "profile_name": message.profile_name,
        "data": dict(message.data),
        "phone": message.phone,
        "user_id": message.user_id,
        "parent_user_id": message.parent_user_id,
        "username": message.username,
        "group_id": message.group_id,
    }


def message_from_fields(data: Mapping[str, Any]) -> InboundMessage:
    """The inverse of :func:`message_fields`; KeyError or ValueError when it is not one."""
    return InboundMessage(
        wamid=data["wamid"],
        wa_id=data["wa_id"],
        type=MessageType(data["type"]),
        timestamp=data.get("timestamp", ""),
        phone_number_id=data.get("phone_number_id", ""),
        profile_name=data.get("profile_name"),
        data=data.get("data") or {},
        # Records written before 2026 have no "phone": their wa_id was the phone.
        phone=data.get("phone", "" if is_bsuid(data["wa_id"]) else data["wa_id"]),
        user_id=data.get("user_id", ""),
        parent_user_id=data.get("parent_user_id", ""),
        username=data.get("username", ""),
        group_id=data.get("group_id", ""),
    )


def json_text(value: Any) -> str:
    """Compact JSON that any text Meta can send survives, as UTF-8 and through Redis.

    JSON may carry a lone UTF-16 surrogate (``"\\ud83d"``, a truncated emoji) and
    ``json.loads`` turns it into a ``str`` that has no UTF-8 form: written out raw, it
    broke the relay's and Redis's encoding (the relay then retried its batch for ever).
    Such text is written with ``\\uXXXX`` escapes, which ``json.loads`` reads back
    unchanged; any other text stays unescaped (compact).

    Raises:
        ValueError, TypeError or RecursionError: when ``value`` is not JSON-encodable.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text


def message_record(message: InboundMessage) -> str:
    """The journal form of a message (compact JSON, always valid UTF-8)."""
    return json_text(message_fields(message))


def message_from_record(record: str | bytes) -> InboundMessage:
    """The inverse of :func:`message_record`."""
    return message_from_fields(json.loads(record))


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery status for a message the bot sent.

    ``recipient_id`` (a phone) is absent when the message went to a BSUID whose phone is
    unknown; ``recipient_user_id`` then says who it was.
    """

    wamid: str
    status: StatusState
    recipient_id: str
    timestamp: str = ""
    errors: tuple[ErrorDetail, ...] = ()
    phone_number_id: str = ""
    recipient_user_id: str = ""
    pricing: Pricing | None = None


@dataclass(frozen=True)
class WebhookError:
    """A value-level error (no message attached), e.g. a media download failure."""

    error: ErrorDetail
    phone_number_id: str = ""


@dataclass(frozen=True)
class Citizen:
    """The identifiers a non-message event gives for a citizen (any may be empty)."""

    phone: str = ""
    user_id: str = ""
    parent_user_id: str = ""

    def __bool__(self) -> bool:
        return bool(self.phone or self.user_id or self.parent_user_id)


@dataclass(frozen=True)
class FieldEvent:
    """A change of a webhook field the bot does not answer (``calls``, ``history``, ...)."""

    field: str


@dataclass(frozen=True)
class Standby:
    """A copy of traffic on a thread another app owns (``standby``): never answered."""

    citizens: tuple[Citizen, ...] = ()
    messages: int = 0


@dataclass(frozen=True)
class Handover:
    """``messaging_handovers``: ``control_passed`` (this app owns the thread now) or
    ``control_taken`` (another app took it)."""

    kind: str
    citizen: Citizen
    app_id: str = ""


@dataclass(frozen=True)
class PreferenceUpdate:
    """``user_preferences``: a citizen stopped or resumed a category (marketing)."""

    citizen: Citizen
    category: str
    value: str


@dataclass(frozen=True)
class IdentityUpdate:
    """``user_id_update``: a citizen's BSUID was regenerated (a number change)."""

    previous: str
    current: Citizen


@dataclass(frozen=True)
class OperatorAlert:
    """``message_template_status_update`` or ``account_update``: for the operators."""

    field: str
    event: str
    template: str = ""
    detail: str = ""


WebhookEvent = Union[
    InboundMessage,
    StatusUpdate,
    WebhookError,
    FieldEvent,
    Standby,
    Handover,
    PreferenceUpdate,
    IdentityUpdate,
    OperatorAlert,
]
