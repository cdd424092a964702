"""Delivery statuses and Meta's opt-out signals, from webhooks into the proactive database.

Used by whichever process receives the webhooks: ``rasa run``, or the ingress when it is
in front (it relays messages only, so statuses would not reach ``rasa run``). The
database is opened on first use, in a worker thread, and purged of records older than
``WPP_PROACTIVE_RETENTION_DAYS`` then and once a day.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.errors import MARKETING_OPT_OUT_CODE
from bot.addons.whatsapp.inbound.events import PreferenceUpdate, StatusUpdate, WebhookEvent
from bot.addons.whatsapp.proactive.store import Delivery, ProactiveStore

logger = logging.getLogger(__name__)

DAY: Final = 86400.0


class DeliveryRecorder:
    def __init__(self, settings: WhatsAppSettings) -> None:
        self.settings = settings
        self._store: ProactiveStore | None = None
        self._opening = asyncio.Lock()
        self._purged_at = 0.0

    async def store(self) -> ProactiveStore:
        """The database, opened (and migrated) on first use."""
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
