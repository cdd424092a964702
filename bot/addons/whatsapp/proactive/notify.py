"""``POST /webhooks/whatsapp/notify``: one message to one citizen, asked by another system.

Framework-free like the webhook's intake (the Sanic routes are in ``channel.py``)::

    POST /webhooks/whatsapp/notify
    Authorization: Bearer <WPP_NOTIFY_TOKEN>
    {"recipient": "5561999990001",                       # a phone or a BSUID
     "template": {"name": "protocolo_atualizado", "language": "pt_BR",
                  "params": ["12345"], "category": "utility"}}
    # or
    {"recipient": "BR.abc…", "response": "utter_protocolo", "slots": {"protocolo": "12345"}}

Answers ``200 {"id", "status", "wamids", "error"?}`` once WhatsApp took (or refused) it.
Refused, with nothing sent: 401/403 (token; every call is refused while
``WPP_NOTIFY_TOKEN`` is empty), 400 (bad body, unknown response), 409 with a ``reason``:
``outside_service_window`` (a response, not a template, more than 24 h after the citizen's
last message), ``template_paused`` (Meta paused or disabled it), ``opted_out`` (a marketing
template to a citizen who stopped marketing messages).

What went out is written to the citizen's Rasa conversation (``ActionExecuted`` and
``BotUttered`` with ``metadata.notification``), so the bot has the context when they
reply. ``GET /webhooks/whatsapp/notify/<id>`` answers the notification's record, moved on
by the status webhooks (sent ▸ delivered ▸ read, or failed with WhatsApp's code and title).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.errors import WhatsAppApiError
from bot.addons.whatsapp.inbound.events import Citizen
from bot.addons.whatsapp.inbound.parse import PayloadError
from bot.addons.whatsapp.inbound.routing import ChannelState
from bot.addons.whatsapp.inbound.signature import bearer_token, token_matches
from bot.addons.whatsapp.inbound.webhook import Lookup, Reply
from bot.addons.whatsapp.logs import MASK_FILTER, ThrottledLog, mask_id
from bot.addons.whatsapp.outbound.convert import ConversionOptions, convert_response
from bot.addons.whatsapp.outbound.messages import OutMessage
from bot.addons.whatsapp.outbound.sender import Sender
from bot.addons.whatsapp.outbound.short_keys import PayloadStore
from bot.addons.whatsapp.proactive.request import (
    NotifyRequest,
    last_user_message_at,
    parse_request,
    response_template,
    template_message,
)
from bot.addons.whatsapp.proactive.store import ProactiveStore

logger = logging.getLogger(__name__)

BODY_MAX_BYTES = 64 * 1024


class NotifyService:
    """Checks, sends, records, answers.

    Args:
        agent: Rasa's agent once loaded (its tracker store, lock store and NLG).
        store: the proactive database (opened by the caller).
    """

    def __init__(
        self,
        settings: WhatsAppSettings,
        sender: Sender,
        state: ChannelState,
        payloads: PayloadStore,
        options: ConversionOptions,
        agent: Callable[[], Any],
        store: Callable[[], Any],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sender = sender
        self.state = state
        self.payloads = payloads
        self.options = options
        self.agent = agent
        self.store = store
        self._clock = clock
        self.refusals = ThrottledLog(log=logger)

    def _refuse(self, status: int, reason: str, detail: str = "") -> Reply:
        self.refusals.warn(reason, "Notification refused (%d %s) %s", status, reason, detail)
        body: dict[str, Any] = {"error": reason}
        if detail:
            body["detail"] = detail
        return Reply(status, body)

    def authenticate(self, headers: Lookup) -> Reply | None:
        if not self.settings.notify_token:
            return self._refuse(403, "notify_disabled", "set WPP_NOTIFY_TOKEN to enable it")
        token = bearer_token(headers.get("Authorization"))
        if not token:
            return self._refuse(401, "token_missing")
        if not token_matches(self.settings.notify_token, token):
            return self._refuse(403, "token_invalid")
        return None

    async def status(self, headers: Lookup, id_: str) -> Reply:
        refused = self.authenticate(headers)
        if refused is not None:
            return refused
        store: ProactiveStore = await self.store()
        record = await asyncio.to_thread(store.notification, id_)
        if record is None:
            return self._refuse(404, "unknown_notification")
        return Reply(
            200,
            {
                "id": record["id"],
                "status": record["status"],
                "wamid": record["wamid"],
                "error": {"code": record["error_code"], "title": record["error_title"]}
                if record["status"] == "failed"
                else None,
            },
        )

    async def submit(self, body: bytes, headers: Lookup) -> Reply:
        refused = self.authenticate(headers)
        if refused is not None:
            return refused
        if len(body) > BODY_MAX_BYTES:
            return self._refuse(413, "body_too_large")
        try:
            request = parse_request(json.loads(body))
        except (ValueError, RecursionError) as exc:
            return self._refuse(400, "invalid_json", str(exc)[:200])
        except PayloadError as exc:
            return self._refuse(400, "invalid_request", str(exc))
        ids = (
            Citizen("", request.recipient, "")
            if request.is_bsuid
            else Citizen(request.recipient, "", "")
        )
        key = await self.state.identities.resolve(ids)
        MASK_FILTER.remember(request.recipient)
        MASK_FILTER.remember(key)
        store: ProactiveStore = await self.store()
        agent = self.agent()
        if agent is None:
            return self._refuse(503, "bot_not_ready")
        async with agent.lock_store.lock(key):
            tracker = await agent.tracker_store.get_or_create_tracker(key)
            if request.template is not None:
                refused = await self._check_template(request, key, store)
                if refused is not None:
                    return refused
                outgoing: list[OutMessage] = [
                    template_message(
                        request.template.name, request.template.language, request.template.params
                    )
                ]
                rasa_response: dict[str, Any] = {"text": f"[template {request.template.name}]"}
                name = request.template.name
            else:
                from rasa.shared.core.events import SlotSet

                for slot, value in request.slots.items():
                    tracker.update(SlotSet(str(slot), value))
                generated = await agent.nlg.generate(request.response, tracker, "whatsapp")
                if not generated:
                    return self._refuse(400, "unknown_response", request.response)
                refused = await self._check_response(dict(generated), tracker.events)
                if refused is not None:
                    return refused
                rasa_response = dict(generated)
                conversion = convert_response(rasa_response, self.options)
                if conversion.payload_keys:
                    await self.payloads.remember(conversion.payload_keys)
                outgoing = list(conversion.messages)
                name = request.response
            id_ = uuid.uuid4().hex
            await asyncio.to_thread(
                store.add_notification,
                id_,
                request.recipient,
                "template" if request.template else "response",
                name,
                request.template.language if request.template else "",
                {"params": list(request.template.params)}
                if request.template
                else {"slots": dict(request.slots)},
            )
            wamids, error = await self._send(key, outgoing)
            if error is None:
                await asyncio.to_thread(store.notification_sent, id_, wamids[0] if wamids else None)
                await self._write_conversation(agent, tracker, id_, name, rasa_response)
            else:
                await asyncio.to_thread(
                    store.notification_failed, id_, error.code or None, error.message
                )
        logger.info(
            "Notification %s (%s) to %s: %s", id_, name, mask_id(key), "failed" if error else "sent"
        )
        answer: dict[str, Any] = {
            "id": id_,
            "status": "failed" if error else "sent",
            "wamids": wamids,
        }
        if error is not None:
            answer["error"] = {"code": error.code, "title": error.message}
        return Reply(200, answer)

    async def _check_template(
        self, request: NotifyRequest, key: str, store: ProactiveStore
    ) -> Reply | None:
        assert request.template is not None
        if not await self.state.routing.template_usable(request.template.name):
            return self._refuse(
                409,
                "template_paused",
                f"template {request.template.name!r} is paused or disabled by Meta",
            )
        if request.template.category == "marketing":
            stopped = await self.state.routing.preference(key, "marketing_messages") == "stop"
            if stopped or await asyncio.to_thread(store.opted_out, [request.recipient, key]):
                return self._refuse(409, "opted_out", "the citizen stopped marketing messages")
        return None

    async def _check_response(self, response: dict[str, Any], events: Any) -> Reply | None:
        """A template response (``custom.whatsapp.type: template``) may go at any time
        unless paused; anything else only inside the citizen's 24-hour window."""
        template = response_template(response)
        if template is not None:
            if not await self.state.routing.template_usable(template):
                return self._refuse(
                    409, "template_paused", f"template {template!r} is paused or disabled by Meta"
                )
            return None
        last = last_user_message_at(events)
        if last is None or self._clock() - last > limits.SERVICE_WINDOW_SECONDS:
            return self._refuse(
                409,
                "outside_service_window",
                "more than 24 hours since the citizen's last message: "
                "only an approved template can be sent",
            )
        return None

    async def _send(
        self, key: str, messages: list[OutMessage]
    ) -> tuple[list[str], WhatsAppApiError | None]:
        contact = await self.state.identities.contact(key)
        wamids: list[str] = []
        for message in messages:
            try:
                wamid = await self.sender.send_one(contact.address, message)
            except WhatsAppApiError as error:
                return wamids, error
            if wamid:
                wamids.append(wamid)
        return wamids, None

    async def _write_conversation(
        self, agent: Any, tracker: Any, id_: str, name: str, response: Mapping[str, Any]
    ) -> None:
        """The notification as the bot's own turn in the citizen's conversation."""
        from rasa.shared.core.events import ActionExecuted, BotUttered

        data = {k: v for k, v in response.items() if k not in ("text", "utter_action")}
        if name.startswith("utter_"):
            tracker.update(ActionExecuted(name))
        tracker.update(
            BotUttered(
                response.get("text"),
                data,
                metadata={"notification": id_, "utter_action": name},
            )
        )
        try:
            await agent.tracker_store.save(tracker)
        except Exception:  # sent already: the record matters less than the answer
            logger.exception("Could not write notification %s to the conversation", id_)
