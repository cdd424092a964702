"""The proactive part of the channel inside ``rasa run``: the database, delivery statuses,
consent words and the notify API, tied to the channel's sender and state.

The database is :class:`~.deliveries.DeliveryRecorder`'s, opened on first use (a
webhook's statuses, a stop word, a notification).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.inbound.events import (
    InboundMessage,
    MessageType,
    WebhookEvent,
)
from bot.addons.whatsapp.inbound.routing import ChannelState
from bot.addons.whatsapp.inbound.webhook import Reply
from bot.addons.whatsapp.logs import mask_id
from bot.addons.whatsapp.outbound.convert import ConversionOptions
from bot.addons.whatsapp.outbound.messages import Text
from bot.addons.whatsapp.outbound.sender import Sender
from bot.addons.whatsapp.outbound.short_keys import PayloadStore
from bot.addons.whatsapp.proactive.consent import consent_choice, reply_for, words
from bot.addons.whatsapp.proactive.deliveries import DeliveryRecorder
from bot.addons.whatsapp.proactive.notify import NotifyService
from bot.addons.whatsapp.proactive.store import ProactiveStore

logger = logging.getLogger(__name__)

DAY = 86400.0


class Proactive:
    def __init__(
        self,
        settings: WhatsAppSettings,
        sender: Sender,
        state: ChannelState,
        payloads: PayloadStore,
        options: ConversionOptions,
    ) -> None:
        self.settings = settings
        self.sender = sender
        self.state = state
        self.deliveries = DeliveryRecorder(settings)
        self._stop = words(settings.stop_words)
        self._resume = words(settings.resume_words)
        self.agent: Callable[[], Any] = lambda: None  # Rasa's agent, once loaded
        self.notify = NotifyService(
            settings, sender, state, payloads, options, lambda: self.agent(), self.store
        )

    @classmethod
    def attach(cls, channel: Any) -> Proactive:
        """The proactive part of a :class:`~bot.addons.whatsapp.channel.WhatsAppInput`:
        it reads Rasa's agent from the channel's app and hears every webhook's events."""
        proactive = cls(
            channel.settings, channel.sender, channel.state, channel.payloads, channel.options
        )
        proactive.agent = lambda: getattr(getattr(channel._app, "ctx", None), "agent", None)
        channel.intake.triage.listeners.append(proactive.observe)
        return proactive

    def add_routes(self, bp: Any, respond: Callable[[Reply], Any]) -> None:
        """``POST /notify`` and ``GET /notify/<id>`` on the channel's blueprint (given by
        the channel: this package does not import Sanic)."""

        @bp.route("/notify", methods=["POST"])
        async def notify(request: Any) -> Any:
            return respond(await self.notify.submit(request.body or b"", request.headers))

        @bp.route("/notify/<id_>", methods=["GET"])
        async def notification(request: Any, id_: str) -> Any:
            return respond(await self.notify.status(request.headers, id_))

    async def store(self) -> ProactiveStore:
        return await self.deliveries.store()

    async def observe(self, events: list[WebhookEvent]) -> None:
        await self.deliveries.observe(events)

    async def close(self) -> None:
        await self.deliveries.close()

    # --- consent words ------------------------------------------------------------

    async def intercept(self, message: InboundMessage) -> bool:
        """True when ``message`` was a stop or resume word, answered here."""
        if message.type is not MessageType.TEXT:
            return False
        text = message.data.get("text")
        body = text.get("body") if isinstance(text, dict) else None
        if not isinstance(body, str) or len(body) > 40:
            return False
        choice = consent_choice(body, self._stop, self._resume)
        if choice is None:
            return False
        ids = [message.phone, message.user_id, message.wa_id]
        store = await self.store()
        if choice == "stop":
            await asyncio.to_thread(store.opt_out, ids, "stop_word")
        else:
            await asyncio.to_thread(store.opt_in, ids)
        logger.info("%s: campaigns %s (consent word)", mask_id(message.wa_id), choice)
        reply = reply_for(choice, self.settings.stop_words, self.settings.resume_words)
        await self.sender.send_all(message.wa_id, [Text(reply)])
        return True
