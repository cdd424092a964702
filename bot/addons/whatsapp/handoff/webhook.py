"""Chatwoot's webhook, framework-free: authenticate ▸ read the event ▸ hand it over.

Served by the channel at ``POST /webhooks/whatsapp/chatwoot/<secret>``. Two checks:

* the ``<secret>`` in the URL, compared in constant time with ``CHATWOOT_WEBHOOK_SECRET``
  (every Chatwoot version can be given such a URL);
* when ``CHATWOOT_SIGNING_SECRET`` is set, Chatwoot's signature: versions that sign send
  ``X-Chatwoot-Signature: sha256=<hex HMAC-SHA256 of "{X-Chatwoot-Timestamp}.{raw body}">``;
  a timestamp more than five minutes off is refused, so a captured delivery cannot be
  replayed later (source: Chatwoot's webhook schema, ``tests/data/chatwoot/SOURCES.md``).

Events used (others answer 200 and are ignored): ``message_created`` that is
``outgoing`` and not ``private`` (an agent's reply) and ``conversation_status_changed``
to ``resolved``, both only for our API inbox.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from bot.addons.whatsapp.inbound.signature import token_matches
from bot.addons.whatsapp.inbound.webhook import Lookup, Reply
from bot.addons.whatsapp.metrics import Metrics

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Chatwoot-Signature"
TIMESTAMP_HEADER = "X-Chatwoot-Timestamp"
MAX_SKEW_SECONDS = 300
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Attachment:
    """A file an agent attached: Chatwoot's ``file_type`` and a URL WhatsApp can fetch."""

    file_type: str
    data_url: str


@dataclass(frozen=True)
class AgentReply:
    """An agent's message for the citizen."""

    message_id: int
    conversation_id: int
    wa_id: str
    content: str
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class Resolved:
    """The agent resolved the conversation: the bot takes over again."""

    conversation_id: int
    wa_id: str


ChatwootEvent = Union[AgentReply, Resolved]


def chatwoot_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Chatwoot-Signature`` value Chatwoot sends for ``body`` at ``timestamp``."""
    signed = timestamp.encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def _contact_wa_id(conversation: Mapping[str, Any]) -> str:
    """The citizen's ``wa_id``: the contact's identifier (set by us), else its phone."""
    meta = conversation.get("meta")
    sender = meta.get("sender") if isinstance(meta, Mapping) else None
    if not isinstance(sender, Mapping):
        return ""
    identifier = str(sender.get("identifier") or "")
    if identifier:
        return identifier
    return str(sender.get("phone_number") or "").lstrip("+")


def read_event(payload: Any, inbox_id: int) -> ChatwootEvent | str:
    """The event in ``payload``, or why it is ignored (pure)."""
    if not isinstance(payload, Mapping):
        return "not an object"
    event = payload.get("event")
    if event == "message_created":
        conversation = payload.get("conversation")
        if not isinstance(conversation, Mapping):
            return "message without conversation"
        if int(conversation.get("inbox_id") or 0) != inbox_id:
            return "another inbox"
        if payload.get("message_type") != "outgoing" or payload.get("private"):
            return "not an agent's public message"
        attachments = tuple(
            Attachment(str(item.get("file_type") or "file"), str(item["data_url"]))
            for item in payload.get("attachments") or []
            if isinstance(item, Mapping) and item.get("data_url")
        )
        wa_id = _contact_wa_id(conversation)
        if not wa_id:
            return "contact without identifier or phone"
        return AgentReply(
            int(payload["id"]),
            int(conversation["id"]),
            wa_id,
            str(payload.get("content") or ""),
            attachments,
        )
    if event == "conversation_status_changed":
        if int(payload.get("inbox_id") or 0) != inbox_id:
            return "another inbox"
        if payload.get("status") != "resolved":
            return f"status {payload.get('status')}"
        wa_id = _contact_wa_id(payload)
        if not wa_id:
            return "contact without identifier or phone"
        return Resolved(int(payload["id"]), wa_id)
    return f"event {event}"


class ChatwootWebhook:
    """Authenticates Chatwoot's calls and hands the events to ``accept``.

    ``accept`` must hold the event once it returns (it deduplicates and queues); it raises
    when it cannot (Redis unreachable), and Chatwoot is then answered 503.
    """

    def __init__(
        self,
        secret: str,
        signing_secret: str,
        inbox_id: int,
        metrics: Metrics,
        accept: Callable[[ChatwootEvent], Awaitable[None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self.signing_secret = signing_secret
        self.inbox_id = inbox_id
        self.metrics = metrics
        self.accept = accept
        self.clock = clock

    def reject(self, status: int, reason: str, detail: str = "") -> Reply:
        self.metrics.rejected_requests[f"chatwoot_{reason}"] += 1
        logger.warning(
            "Chatwoot webhook refused (%d %s)%s", status, reason, f": {detail}" * bool(detail)
        )
        return Reply(status, {"error": reason})

    async def receive(self, secret: str, body: bytes, headers: Lookup) -> Reply:
        if not token_matches(self.secret, secret):
            return self.reject(403, "secret_invalid")
        if len(body) > MAX_BODY_BYTES:
            return self.reject(413, "body_too_large", f"{len(body)} bytes")
        if self.signing_secret:
            refused = self._check_signature(body, headers)
            if refused is not None:
                return refused
        try:
            payload = json.loads(body)
            event = read_event(payload, self.inbox_id)
        except (ValueError, KeyError, TypeError) as exc:
            return self.reject(400, "invalid_payload", repr(exc))
        if isinstance(event, str):
            logger.debug("Chatwoot webhook ignored: %s", event)
            return Reply(200, {"status": "ignored", "reason": event})
        try:
            await self.accept(event)
        except Exception as exc:  # the dedup store (Redis) is unreachable
            return self.reject(503, "dedup_unavailable", repr(exc))
        return Reply(200, {"status": "ok"})

    def _check_signature(self, body: bytes, headers: Lookup) -> Reply | None:
        signature = headers.get(SIGNATURE_HEADER)
        timestamp = headers.get(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            return self.reject(401, "signature_missing")
        try:
            skew = abs(self.clock() - int(timestamp))
        except ValueError:
            return self.reject(403, "signature_invalid", "timestamp is not a number")
        expected = chatwoot_signature(self.signing_secret, str(timestamp), body)
        if not hmac.compare_digest(expected.encode(), str(signature).strip().encode()):
            return self.reject(403, "signature_invalid")
        if skew > MAX_SKEW_SECONDS:
            return self.reject(403, "signature_expired", f"{skew:.0f} s off")
        return None
