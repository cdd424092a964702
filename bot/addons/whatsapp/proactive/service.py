"""The proactive part of the channel inside ``rasa run``: the database, delivery statuses,
consent words and the notify API, tied to the channel's sender and state.

The database is opened on first use (a webhook's statuses, a stop word, a notification),
in a worker thread, and purged of records older than ``WPP_PROACTIVE_RETENTION_DAYS`` then
and once a day.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.errors import MARKETING_OPT_OUT_CODE
from bot.addons.whatsapp.inbound.events import (
    InboundMessage,
    MessageType,
    PreferenceUpdate,
    StatusUpdate,
    WebhookEvent,
)
from bot.addons.whatsapp.inbound.routing import ChannelState
from bot.addons.whatsapp.logs import mask_id
from bot.addons.whatsapp.outbound.convert import ConversionOptions
from bot.addons.whatsapp.outbound.messages import Text
from bot.addons.whatsapp.outbound.sender import Sender
from bot.addons.whatsapp.outbound.short_keys import PayloadStore
from bot.addons.whatsapp.proactive.consent import consent_choice, reply_for, words
from bot.addons.whatsapp.proactive.notify import NotifyService
from bot.addons.whatsapp.proactive.store import Delivery, ProactiveStore

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
        self._store: ProactiveStore | None = None
        self._opening = asyncio.Lock()
        self._purged_at = 0.0
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

    async def store(self) -> ProactiveStore:
        async with self._opening:
            if self._store is None:
                self._store = await asyncio.to_thread(
                    ProactiveStore.open, self.settings.proactive_db_url
                )
            if time.time() - self._purged_at > DAY:
                self._purged_at = time.time()
                deleted = await asyncio.to_thread(
                    self._store.purge, self.settings.proactive_retention_days * DAY
                )
                if deleted:
                    logger.info("Proactive retention: %d old record(s) deleted", deleted)
            return self._store

    async def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # --- webhooks: statuses and Meta's opt-outs ----------------------------------------

    async def observe(self, events: list[WebhookEvent]) -> None:
        """Record delivery statuses and opt-outs; a database failure is logged, never
        turned into a webhook failure (the bot's own replies do not depend on it)."""
        deliveries: list[Delivery] = []
        stops: list[list[str]] = []
        resumes: list[list[str]] = []
        for event in events:
            if isinstance(event, StatusUpdate):
                error = event.errors[0] if event.errors else None
                recipient = event.recipient_id or event.recipient_user_id
                deliveries.append(
                    Delivery(
                        event.wamid,
                        recipient,
                        event.status.value,
                        error.code if error else None,
                        error.title if error else "",
                    )
                )
                if error is not None and error.code == MARKETING_OPT_OUT_CODE:
                    stops.append([event.recipient_id, event.recipient_user_id])
            elif isinstance(event, PreferenceUpdate) and event.category == "marketing_messages":
                ids = [event.citizen.phone, event.citizen.user_id]
                (stops if event.value == "stop" else resumes).append(ids)
        if not (deliveries or stops or resumes):
            return
        try:
            store = await self.store()
            await asyncio.to_thread(self._write, store, deliveries, stops, resumes)
        except Exception as exc:
            logger.error("Could not record %d status(es) and opt-outs: %r", len(deliveries), exc)

    @staticmethod
    def _write(
        store: ProactiveStore,
        deliveries: list[Delivery],
        stops: list[list[str]],
        resumes: list[list[str]],
    ) -> None:
        for delivery in deliveries:
            store.record_status(delivery)
        for ids in stops:
            store.opt_out(ids, "meta")
        for ids in resumes:
            store.opt_in(ids)

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
