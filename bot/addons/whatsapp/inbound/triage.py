"""Triage of a webhook's events: what each one is, what it changes, and which messages
the bot answers.

Every event is counted (and statuses, errors and operator alerts logged); handovers,
preferences, BSUID changes and template statuses are written to the shared
:class:`~bot.addons.whatsapp.inbound.routing.ChannelState`; of the messages, those written
in a group or on a thread another app owns are dropped, and the rest are keyed on their
conversation through the identity map (README, "Usernames and business-scoped user IDs").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.inbound.events import (
    Citizen,
    FieldEvent,
    Handover,
    IdentityUpdate,
    InboundMessage,
    MessageType,
    OperatorAlert,
    PreferenceUpdate,
    Standby,
    StatusState,
    StatusUpdate,
    WebhookError,
    WebhookEvent,
)
from bot.addons.whatsapp.inbound.routing import ChannelState
from bot.addons.whatsapp.logs import MASK_FILTER, mask_id
from bot.addons.whatsapp.metrics import Metrics

logger = logging.getLogger(__name__)


class Triage:
    """Shared by the channel and the ingress: both see every webhook first."""

    def __init__(self, settings: WhatsAppSettings, metrics: Metrics, state: ChannelState) -> None:
        self.settings = settings
        self.metrics = metrics
        self.state = state
        self._fields_logged: set[str] = set()
        # Called with every webhook's events after they are applied (the proactive
        # store records delivery statuses and opt-outs); each handles its own failures.
        self.listeners: list[Callable[[list[WebhookEvent]], Awaitable[None]]] = []

    def record(self, events: list[WebhookEvent]) -> list[InboundMessage]:
        """Count every event, log statuses, errors and alerts; return the messages."""
        messages = []
        for event in events:
            if isinstance(event, InboundMessage):
                self.metrics.events_received[f"message_{event.type.value}"] += 1
                messages.append(event)
            elif isinstance(event, StatusUpdate):
                self._record_status(event)
            elif isinstance(event, WebhookError):
                self.metrics.events_received["error"] += 1
                self.metrics.failure(event.error.code)
                logger.error(
                    "WhatsApp reported error %s %s: %s",
                    event.error.code,
                    event.error.title,
                    event.error.details or event.error.message,
                )
            elif isinstance(event, OperatorAlert):
                self.metrics.operator_alerts[(event.field, event.event)] += 1
                logger.warning(
                    "WhatsApp %s: %s%s %s",
                    event.field,
                    event.event,
                    f" template {event.template!r}" if event.template else "",
                    event.detail,
                )
            elif isinstance(event, FieldEvent):
                self.metrics.webhook_fields[event.field] += 1
                if event.field not in self._fields_logged:
                    self._fields_logged.add(event.field)
                    logger.info(
                        "Webhook field %r received: counted, never answered (logged once)",
                        event.field,
                    )
            else:
                name = {
                    Standby: "standby",
                    Handover: "messaging_handovers",
                    PreferenceUpdate: "user_preferences",
                    IdentityUpdate: "user_id_update",
                }[type(event)]
                self.metrics.webhook_fields[name] += 1
        return messages

    def _record_status(self, event: StatusUpdate) -> None:
        self.metrics.events_received["status"] += 1
        self.metrics.statuses[event.status.value] += 1
        # Meta prices a message on "sent" and again on one of "delivered"/"read"; counting
        # the delivered/read one counts each billed message once.
        if event.pricing is not None and event.status is not StatusState.SENT:
            pricing = event.pricing
            self.metrics.pricing[(pricing.category, pricing.type, pricing.billable)] += 1
        if event.status is not StatusState.FAILED:
            return
        # Failed statuses have no contacts; a BSUID-only recipient has no recipient_id.
        recipient = mask_id(event.recipient_id or event.recipient_user_id)
        for error in event.errors or ():
            self.metrics.failure(error.code)
            logger.error(
                "Message %s to %s failed: %s %s (%s)",
                event.wamid,
                recipient,
                error.code,
                error.title,
                error.details or error.message,
            )
        if not event.errors:
            self.metrics.failure("unknown")
            logger.error("Message %s to %s failed", event.wamid, recipient)

    async def _key(self, citizen: Citizen) -> str:
        return await self.state.identities.resolve(citizen)

    async def apply(self, events: list[WebhookEvent]) -> None:
        """Write what the non-message events say into the shared state."""
        routing = self.state.routing
        idle = self.settings.handover_idle_seconds
        for event in events:
            if isinstance(event, Standby):
                for citizen in event.citizens:
                    await routing.touch(await self._key(citizen), idle)
            elif isinstance(event, Handover):
                key = await self._key(event.citizen)
                if event.kind == "control_taken":
                    await routing.hand_over(key, event.app_id, idle)
                else:
                    await routing.take_back(key)
                self.metrics.handovers[event.kind] += 1
                logger.info("Thread of %s: %s", mask_id(key), event.kind)
            elif isinstance(event, PreferenceUpdate):
                key = await self._key(event.citizen)
                await routing.set_preference(key, event.category, event.value)
                self.metrics.preferences[(event.category, event.value)] += 1
                logger.info("%s: %s %s", mask_id(key), event.category, event.value)
            elif isinstance(event, IdentityUpdate):
                current = event.current
                await self.state.identities.link(
                    event.previous,
                    current,
                )
            elif isinstance(event, OperatorAlert) and event.template:
                await routing.set_template_status(event.template, event.event)
        for listener in self.listeners:
            await listener(events)

    async def addressed(self, messages: list[InboundMessage]) -> list[InboundMessage]:
        """The messages the bot answers, each keyed on its conversation (identity map).

        Group messages get no one-to-one reply, and a citizen whose thread another app
        owns is not answered (Meta's conversation routing).
        """
        addressed = []
        for message in messages:
            if message.group_id:
                self.metrics.not_answered["group"] += 1
                logger.info("Message %s was written in a group: not answered", message.wamid)
                continue
            ids = Citizen(message.phone, message.user_id, message.parent_user_id)
            key = await self.state.identities.resolve(ids) if ids else message.wa_id
            await self._link_number_change(message)
            if message.type is MessageType.SYSTEM:
                # A notice about the citizen, not from them: nothing to answer.
                self.metrics.quiet_events["system"] += 1
                logger.info("System notice %s: identities updated, not answered", message.wamid)
                continue
            owner = await self.state.routing.owner(key)
            if owner is not None:
                self.metrics.not_answered["other_app_owns_thread"] += 1
                logger.info("Message %s not answered: app %s owns the thread", message.wamid, owner)
                continue
            for secret in (message.phone, message.user_id, message.parent_user_id, key):
                MASK_FILTER.remember(secret)
            if message.username:
                MASK_FILTER.remember(message.username)
            addressed.append(replace(message, wa_id=key))
        return addressed

    async def _link_number_change(self, message: InboundMessage) -> None:
        """A ``user_changed_number`` system message: the new phone and BSUID join the
        conversation of the old ones."""
        if message.type is not MessageType.SYSTEM:
            return
        system = message.data.get("system")
        if not isinstance(system, Mapping):
            return
        new = Citizen(
            str(system.get("wa_id") or ""),
            str(system.get("user_id") or ""),
            str(system.get("parent_user_id") or ""),
        )
        previous = message.phone or message.user_id
        if new and previous:
            await self.state.identities.link(previous, new)
