"""One acknowledged message's turn in ``rasa run``: from the queue to Rasa and back.

Marks the message read, turns it into a Rasa ``UserMessage`` (tapped short keys resolved
back to their payloads), runs Rasa's turn (on the turn thread when there is one), sends a
polite fallback when the turn produced no response, and finishes the message's journal
entry whatever happened. Events a person would not answer (reactions, deletions, edits,
call permission replies: :mod:`bot.addons.whatsapp.inbound.quiet`) are not marked read
and get no fallback; a message deleted before its turn is not handled. An adopted message
whose turn Rasa's tracker already holds is only finished.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rasa.core.channels.channel import UserMessage
from rasa.shared.core.events import BotUttered

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.delivery.progress import Journal, TurnProgress
from bot.addons.whatsapp.delivery.sender_queue import Queued
from bot.addons.whatsapp.delivery.turn_thread import TurnThread
from bot.addons.whatsapp.inbound import quiet
from bot.addons.whatsapp.inbound.events import InboundMessage, MessageType
from bot.addons.whatsapp.inbound.to_rasa import (
    reaction_text,
    reply_id,
    user_text,
    whatsapp_metadata,
)
from bot.addons.whatsapp.logs import MASK_FILTER, mask_id
from bot.addons.whatsapp.metrics import Metrics
from bot.addons.whatsapp.outbound.messages import Text
from bot.addons.whatsapp.outbound.sender import Sender
from bot.addons.whatsapp.outbound.short_keys import PayloadStore
from bot.addons.whatsapp.providers.base import Provider

if TYPE_CHECKING:
    from bot.addons.whatsapp.handoff.service import Handoff
    from bot.addons.whatsapp.proactive.service import Proactive
    from bot.addons.whatsapp.voice.service import VoiceNotes

logger = logging.getLogger(__name__)

CHANNEL_NAME = "whatsapp"


class TurnRunner:
    """The dispatcher's handler: runs the turn of one :class:`Queued` message.

    Args:
        output: builds the turn's output channel (it counts the responses Rasa gave).
        tracker_store: Rasa's tracker store once the agent is loaded (None before).
    """

    handoff: Handoff | None = None  # set by the channel: paused conversations go to Chatwoot
    voice: VoiceNotes | None = None  # set by the channel when a voice backend is configured
    proactive: Proactive | None = None  # set by the channel: stop and resume words

    def __init__(
        self,
        settings: WhatsAppSettings,
        metrics: Metrics,
        provider: Provider,
        sender: Sender,
        payloads: PayloadStore,
        journal: Journal,
        turns: TurnThread,
        output: Callable[[TurnProgress | None], Any],
        tracker_store: Callable[[], Any],
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.provider = provider
        self.sender = sender
        self.payloads = payloads
        self.journal = journal
        self.turns = turns
        self.output = output
        self.tracker_store = tracker_store
        self.on_new_message = on_new_message
        self._background: set[asyncio.Task[Any]] = set()

    async def __call__(self, item: Queued) -> None:
        message = item.message
        MASK_FILTER.remember(message.wa_id)
        if item.revoked or item.settled:
            await self._finish_settled(item)
            return
        if item.adopted and await Journal.already_answered(message, self.tracker_store()):
            logger.info("Adopted message %s was already answered", message.wamid)
            await self.journal.finish(message.wamid)
            return
        if self.journal.store.journaled and not await self.journal.still_ours(message.wamid):
            return  # adopted by another process while it waited here: that one answers
        kind = quiet.quiet_kind(message)
        if kind == quiet.EDIT and self.settings.edits_as_new_messages:
            # Opted in (WPP_EDITS_AS_NEW_MESSAGES): the edit is answered as a new message.
            message = quiet.as_edited(message, message)
            answered = True
        else:
            answered = kind is None
        if kind is not None:
            self.metrics.quiet_events[kind if not answered else "edit_as_new_message"] += 1
        if self.settings.mark_read and not item.adopted and kind is None:
            self._in_background(self._mark_read(message.wamid))
        output = self.output(self.journal.progress(message.wamid, item.already_sent))
        output.join_text_and_buttons = self.settings.merge_text_buttons
        if self.handoff is not None and await self.handoff.intercept(message, output.progress):
            await self.journal.finish(message.wamid)
            return
        if self.proactive is not None and await self._consent(message):
            await self.journal.finish(message.wamid)
            return
        try:
            text = user_text(message, self.settings.intents)
            metadata = whatsapp_metadata(message)
            if reply_id(message) is not None:
                text = await self.payloads.resolve(text)
            if kind == quiet.REACTION:
                text = await self._reaction_text(message, text)
            elif self.voice is not None and message.type is MessageType.AUDIO:
                # Inside the turn: this sender's later messages wait for the transcript.
                text, heard = await self.voice.understand(message, self.provider)
                metadata.update(heard)
            await self.turns.run(
                self.on_new_message(
                    UserMessage(
                        text,
                        output,
                        sender_id=message.wa_id,
                        input_channel=CHANNEL_NAME,
                        message_id=message.wamid,
                        metadata={"whatsapp": metadata},
                    )
                )
            )
            self.metrics.messages_handled += 1
        except Exception:
            self.metrics.handling_errors += 1
            logger.exception("The bot's turn for %s failed", message.wamid)
        finally:
            progress = output.progress
            if progress is not None and progress.taken:
                pass  # the adopter answers, and finishes the entry
            else:
                await self._flush(output, message)
                if output.responses == 0 and answered:
                    await self._break_silence(message)
                if self.handoff is not None:
                    await self.handoff.after_turn(message, output.handoff)
                await self.journal.finish(message.wamid)
            self.metrics.observe_latency(time.monotonic() - item.received_at)

    async def _flush(self, output: Any, message: InboundMessage) -> None:
        """Send the text the output still holds for joining (outbound/join.py)."""
        try:
            await output.flush()
        except Exception:
            logger.exception("Could not send the last reply to %s", message.wamid)

    async def _finish_settled(self, item: Queued) -> None:
        """A message deleted before its turn, or a deletion or edit that already did its
        work on a waiting message: no turn, no reply; the journal entry is finished."""
        message = item.message
        if item.revoked:
            self.metrics.quiet_events["deleted_before_turn"] += 1
            logger.info(
                "Message %s was deleted by the citizen before its turn: not handled", message.wamid
            )
        else:
            kind = "edit_applied" if message.type is MessageType.EDIT else "revoke_applied"
            self.metrics.quiet_events[kind] += 1
            logger.info(
                "%s %s applied to a message still waiting for its turn",
                message.type.value.capitalize(),
                message.wamid,
            )
        await self.journal.finish(message.wamid)

    async def _reaction_text(self, message: InboundMessage, text: str) -> str:
        """The reaction's payload, plus ``"feedback"`` when a 👍/👎 came right after the
        feedback question (the last thing the bot said was that question)."""
        sentiment = quiet.reaction_sentiment(quiet.reaction_emoji(message))
        self.metrics.reactions[sentiment] += 1
        if sentiment not in ("positive", "negative"):
            return text
        if await self._last_utterance(message.wa_id) != quiet.FEEDBACK_QUESTION:
            return text
        self.metrics.reaction_feedback[sentiment] += 1
        return reaction_text(message, self.settings.intents, feedback=sentiment)

    async def _last_utterance(self, sender_id: str) -> str | None:
        """The response name (``utter_…``) of the bot's last message to ``sender_id``."""
        store = self.tracker_store()
        if store is None:
            return None
        try:
            tracker = await store.retrieve(sender_id)
        except Exception as exc:
            logger.warning("Could not read the tracker of %s: %s", mask_id(sender_id), exc)
            return None
        for event in reversed(list(getattr(tracker, "events", None) or [])):
            if isinstance(event, BotUttered):
                name = (event.metadata or {}).get("utter_action")
                return name if isinstance(name, str) else None
        return None

    async def _consent(self, message: InboundMessage) -> bool:
        assert self.proactive is not None
        try:
            return await self.proactive.intercept(message)
        except Exception:  # the database down: the bot still answers the message
            logger.exception("Could not apply a consent word from %s", message.wamid)
            return False

    async def close(self) -> None:
        """Wait for the read receipts still in flight."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _break_silence(self, message: InboundMessage) -> None:
        """A turn that produced no response (the action server down, an error in a
        policy) gets a polite message rather than silence; WPP_SILENCE_FALLBACK="" turns it off."""
        self.metrics.silent_turns += 1
        logger.warning("The bot gave no response to %s", message.wamid)
        if self.settings.silence_fallback:
            try:
                await self.sender.send_all(message.wa_id, [Text(self.settings.silence_fallback)])
            except Exception:
                logger.exception("Could not send the fallback message for %s", message.wamid)

    def _in_background(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _mark_read(self, wamid: str) -> None:
        try:
            await self.provider.mark_read(wamid, typing=self.settings.typing_indicator)
        except Exception as exc:  # never let a read receipt break a turn
            logger.warning("Could not mark %s read: %s", wamid, exc)
