"""The webhook's request path, framework-free: shared by the channel inside ``rasa run``
(Sanic) and by the ingress process in front of it (aiohttp).

``Intake.receive`` takes a provider's webhook: size check ▸ authentication (Meta's HMAC of
the raw body, or Serpro's token) ▸ JSON ▸ every ``entry[].changes[].value`` ▸ statuses and
errors counted and logged ▸ messages deduplicated by ``wamid`` ▸ handed to a :class:`Sink`
(the per-sender dispatcher in ``rasa run``, the relay in the ingress). It answers 200 as
soon as the sink holds them, 503 when it cannot (full, stopping, Redis unreachable) so the
provider redelivers later.

``Intake.receive_relay`` is the other end of the ingress: messages it acknowledged,
signed with the provider's secret, taken over from its journal and dispatched.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence, Sized
from dataclasses import dataclass
from typing import Any, Protocol

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.delivery.dedup import DedupStore
from bot.addons.whatsapp.inbound.events import (
    InboundMessage,
    message_from_fields,
    message_record,
)
from bot.addons.whatsapp.inbound.parse import (
    PayloadError,
    cloud_changes,
    parse_changes,
    parse_values,
    serpro_values,
)
from bot.addons.whatsapp.inbound.routing import ChannelState, create_state
from bot.addons.whatsapp.inbound.signature import (
    RELAY_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    bearer_token,
    body_signature_matches,
    relay_signature_matches,
    token_matches,
)
from bot.addons.whatsapp.inbound.tarpit import Tarpit
from bot.addons.whatsapp.inbound.triage import Triage
from bot.addons.whatsapp.logs import ThrottledLog, mask_id
from bot.addons.whatsapp.metrics import Metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """What to answer: a JSON object, or plain text (the verification challenge)."""

    status: int
    body: dict[str, Any] | str


class Lookup(Protocol):
    """Headers or query arguments, as Sanic and aiohttp both give them."""

    def get(self, key: str, /) -> Any: ...


class Sink(Protocol):
    """Where accepted messages go; it must hold them once ``submit`` returns True."""

    @property
    def accepting(self) -> bool:
        """False once shutdown began."""

    @property
    def depth(self) -> int:
        """Messages held and not yet finished (for logs and /health)."""

    def room(self) -> int:
        """How many more messages fit now (0 when not accepting)."""

    def room_for(self, sender: str) -> int:
        """How many more messages of ``sender`` (its ``wa_id``) fit now."""

    def submit(self, messages: Sequence[InboundMessage], force: bool = False) -> bool:
        """Take every message, in order, or none (False); ``force`` takes them even over
        the size bound (for messages whose room was counted before)."""


class Intake:
    """Authenticates, parses, deduplicates and hands messages to ``sink``."""

    def __init__(
        self,
        settings: WhatsAppSettings,
        metrics: Metrics,
        dedup: DedupStore,
        sink: Sink,
        state: ChannelState | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.dedup = dedup
        self.sink = sink
        # Anyone can send refused requests (401, 403, 413, 503 …) by the thousand: one
        # line per reason per interval, every one counted in the metrics.
        self.refusals = ThrottledLog(log=logger)
        # ... and answered late (tarpit.py), so a flood of them costs time, not CPU.
        self.tarpit = Tarpit.configured(settings, metrics)
        self.state = state or create_state(settings.redis_url, settings.channel_retention_seconds)
        self.triage = Triage(settings, metrics, self.state)
        metrics.queue_depth = lambda: sink.depth
        metrics.dedup_entries = lambda: len(dedup) if isinstance(dedup, Sized) else 0

    def reject(self, status: int, reason: str, detail: str = "") -> Reply:
        self.metrics.rejected_requests[reason] += 1
        suffix = f": {detail}" if detail else ""
        self.refusals.warn(reason, "Webhook refused (%d %s)%s", status, reason, suffix)
        return Reply(status, {"error": reason})

    async def held(self, reply: Reply) -> Reply:
        """``reply``, after the tarpit's delay when it refuses an unauthenticated request."""
        if self.tarpit.applies(reply.status):
            await self.tarpit.hold()
        return reply

    # --- GET /webhook: Meta's subscription handshake -------------------------------

    def verify(self, args: Lookup) -> Reply:
        mode = args.get("hub.mode")
        token = args.get("hub.verify_token")
        if mode == "subscribe" and token_matches(self.settings.verify_token, token):
            logger.info("Webhook verified by Meta")
            return Reply(200, args.get("hub.challenge") or "")
        return self.reject(403, "verification_failed")

    # --- POST /webhook: the provider's events --------------------------------------

    def refuse_encoded(self, headers: Lookup) -> Reply | None:
        """415 for a compressed body, to be called before the body is read.

        Meta and Serpro send plain JSON. A gzip or deflate body is decompressed by aiohttp
        as it is read, before any size or signature check: one unsigned 204 KB request
        took the ingress from 35 MiB to 434 MiB. So any encoding but ``identity`` is
        refused on its header alone.
        """
        encoding = headers.get("Content-Encoding")
        if encoding and encoding.strip().lower() != "identity":
            return self.reject(415, "content_encoding_refused", repr(encoding[:40]))
        return None

    def refuse_unread(self, headers: Lookup, args: Lookup, declared: int | None) -> Reply | None:
        """What the request's head alone refuses, to be called before the body is read.

        A compressed body (415, see :meth:`refuse_encoded`); a body whose ``Content-Length``
        is over the webhook's limit (413: aiohttp reads up to its ``client_max_size`` before
        refusing, so a flood of large bodies would have the ingress copy each one); and a
        request that cannot authenticate whatever its body: no Meta signature (401), or a
        Serpro token missing or wrong (it does not depend on the body). A flood of hostile
        requests then costs the ingress their heads, not their bodies.
        """
        refused = self.refuse_encoded(headers)
        if refused is not None:
            return refused
        if declared is not None and declared > limits.WEBHOOK_BODY_MAX_BYTES:
            return self.reject(413, "body_too_large", f"{declared} bytes declared")
        if self.settings.provider != "cloud":
            return self._authenticate_token(headers, args)  # not over the body
        if not headers.get(SIGNATURE_HEADER):
            return self.reject(401, "signature_missing")
        return None  # the signature is checked on the body, once it is read

    async def receive(self, body: bytes, headers: Lookup, args: Lookup) -> Reply:
        if len(body) > limits.WEBHOOK_BODY_MAX_BYTES:
            return self.reject(413, "body_too_large", f"{len(body)} bytes")
        refused = await self._authenticate(body, headers, args)
        if refused is not None:
            return refused
        if not self.sink.accepting:
            return self.reject(503, "shutting_down")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            return self.reject(400, "invalid_json", str(exc)[:200])
        try:
            parsed = (
                parse_changes(iter(list(cloud_changes(payload))))
                if self.settings.provider == "cloud"
                else parse_values(iter(list(serpro_values(payload))))
            )
        except PayloadError as exc:
            return self.reject(400, "invalid_payload", str(exc))
        for problem in parsed.problems:
            logger.warning("Webhook item skipped: %s", problem)
        messages = self.triage.record(parsed.events)
        try:
            await self.triage.apply(parsed.events)
            messages = await self.triage.addressed(messages)
        except Exception as exc:  # Redis unreachable: the provider redelivers later
            return self.reject(503, "state_unavailable", repr(exc))
        refused = await self._accept(messages)
        if refused is not None:
            return refused
        return Reply(200, {"status": "ok", "messages": len(messages)})

    async def _authenticate(self, body: bytes, headers: Lookup, args: Lookup) -> Reply | None:
        if self.settings.provider != "cloud":
            return self._authenticate_token(headers, args)
        header = headers.get(SIGNATURE_HEADER)
        if not header:
            return self.reject(401, "signature_missing")
        if not await body_signature_matches(self.settings.app_secret, body, header):
            return self.reject(403, "signature_invalid")
        return None

    def _authenticate_token(self, headers: Lookup, args: Lookup) -> Reply | None:
        """Serpro's token, from the ``Authorization`` header or ``?token=``."""
        token = bearer_token(headers.get("Authorization")) or args.get("token")
        if not token:
            return self.reject(401, "token_missing")
        if not token_matches(self.settings.serpro_webhook_token, token):
            return self.reject(403, "token_invalid")
        return None

    async def _accept(self, messages: list[InboundMessage]) -> Reply | None:
        """Deduplicate and hand over; a reply when the batch cannot be accepted."""
        if self.sink.room() < len(messages):
            return self.reject(503, "queue_full", f"{self.sink.depth} queued")
        per_sender = Counter(message.wa_id for message in messages)
        for sender, count in per_sender.items():
            if self.sink.room_for(sender) < count:
                # One number flooding: it waits (Meta redelivers), nobody else does.
                return self.reject(503, "sender_queue_full", mask_id(sender))
        fresh: list[InboundMessage] = []
        try:
            for message in messages:
                record = self._record_of(message)
                if await self.dedup.claim(message.wamid, record):
                    fresh.append(message)
                else:
                    self.metrics.duplicates_dropped += 1
                    logger.info("Duplicate delivery of %s dropped", message.wamid)
        except Exception as exc:  # the dedup store (Redis) is unreachable
            await self._release(fresh)
            return self.reject(503, "dedup_unavailable", repr(exc))
        if not self.sink.submit(fresh):
            await self._release(fresh)
            return self.reject(503, "queue_full", f"{self.sink.depth} queued")
        return None

    def _record_of(self, message: InboundMessage) -> str:
        return message_record(message) if self.dedup.journaled else ""

    async def _release(self, messages: list[InboundMessage]) -> None:
        for message in messages:
            try:
                await self.dedup.release(message.wamid)
            except Exception as exc:
                logger.warning("Could not release dedup claim of %s: %s", message.wamid, exc)

    # --- POST /relay: messages the ingress acknowledged ------------------------------

    async def receive_relay(self, body: bytes, headers: Lookup) -> Reply:
        """Take over a prefix of the relayed messages, as many as fit, in order.

        Answers ``{"accepted": n}``: the first ``n`` are now this process's (or were
        already taken, when the relay is a retry); the ingress sends the rest again.
        """
        if not relay_signature_matches(
            self.settings.relay_secret, body, headers.get(RELAY_SIGNATURE_HEADER)
        ):
            return self.reject(403, "relay_signature_invalid")
        try:
            payload = json.loads(body)
            owner = str(payload.get("owner") or "")
            messages = [message_from_fields(item) for item in payload["messages"]]
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            return self.reject(400, "invalid_relay", repr(exc)[:200])
        room = self.sink.room()
        if messages and room == 0:
            reason = "queue_full" if self.sink.accepting else "shutting_down"
            return self.reject(503, reason, f"{self.sink.depth} queued")
        considered = messages[:room]
        fresh: list[InboundMessage] = []
        deferred: list[int] = []
        held: Counter[str] = Counter()
        accepted = 0
        try:
            for index, message in enumerate(considered):
                sender = message.wa_id
                if (sender in held and held[sender] < 0) or self.sink.room_for(sender) <= held[
                    sender
                ]:
                    held[sender] = -1  # this sender's later messages wait behind this one
                    deferred.append(index)
                elif await self.dedup.take_over(message.wamid, self._record_of(message), owner):
                    fresh.append(message)
                    held[sender] += 1
                else:
                    self.metrics.duplicates_dropped += 1
                    logger.info("Relayed message %s was already taken over", message.wamid)
                accepted += 1
        except Exception as exc:  # Redis unreachable: keep what was taken, refuse the rest
            if not accepted:
                return self.reject(503, "dedup_unavailable", repr(exc))
            logger.warning("Relay cut short after %d message(s): %r", accepted, exc)
        # Forced: room was counted before the first await, and what this process took
        # over from the ingress's journal must run here even if an adopted turn came
        # in meanwhile.
        if not self.sink.submit(fresh, force=True):  # shutdown began meanwhile
            if not self.dedup.journaled:
                await self._release(fresh)
                return self.reject(503, "shutting_down")
            logger.warning(
                "Shutdown began: %d relayed message(s) left in the journal for another process",
                len(fresh),
            )
        return Reply(200, {"status": "ok", "accepted": accepted, "deferred": deferred})
