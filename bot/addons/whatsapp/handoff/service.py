"""The handoff's life in ``rasa run``: open, forward, deliver the agent's replies, resume.

* **Open** (after the turn whose ``action_handoff`` asked for it with the custom response
  ``{"handoff": {"note": ...}}``): the citizen's contact (by ``wa_id``, named from the
  WhatsApp profile) and an open conversation in the API inbox, reused when there is one,
  get the bot conversation's last turns as a private note; then the bot says it is
  transferring (a ``/handoff_started{"handoff_position": "3"}`` turn: the place in
  Chatwoot's queue of unassigned conversations, "0" when Chatwoot did not say within two
  seconds) and the conversation is paused. Chatwoot not
  configured or unreachable: a ``/handoff_ended{"handoff_outcome":"unavailable"}`` turn
  instead (the designer's contact text), and nothing is paused.
* **Forward** (each message of a paused conversation, inside its turn): posted to the
  conversation as the citizen's (media as an attachment, :mod:`.forward`), counted in the
  journal like a reply, so a turn run again after a crash does not post it twice. A resume
  word ("menu") resumes instead.
* **Agent replies** (Chatwoot's webhook): deduplicated by Chatwoot's message id, then sent
  through the channel's sender, one chain per citizen so they go out in arrival order.
* **Resume**: resolved in Chatwoot, a resume word, or no agent reply within
  ``HANDOFF_AGENT_TIMEOUT`` ▸ ``ConversationResumed`` and a
  ``/handoff_ended{"handoff_outcome": ...}`` turn, so the designer chooses the words.
  The answers to the optional satisfaction question that may follow are counted here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from rasa.core.channels.channel import UserMessage

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.delivery.dedup import DedupStore
from bot.addons.whatsapp.delivery.progress import TurnProgress
from bot.addons.whatsapp.handoff.client import ChatwootClient, ChatwootError, ChatwootSettings
from bot.addons.whatsapp.handoff.describe import plain_text, rating_of
from bot.addons.whatsapp.handoff.forward import forward
from bot.addons.whatsapp.handoff.state import TrackerState, Waiting
from bot.addons.whatsapp.handoff.webhook import AgentReply, ChatwootEvent, ChatwootWebhook
from bot.addons.whatsapp.inbound.events import InboundMessage
from bot.addons.whatsapp.logs import mask_phone
from bot.addons.whatsapp.metrics import Metrics
from bot.addons.whatsapp.outbound.convert import ConversionOptions, convert_response
from bot.addons.whatsapp.outbound.messages import Media, MediaType, OutMessage
from bot.addons.whatsapp.outbound.sender import Sender

logger = logging.getLogger(__name__)

BotTurn = Callable[[str, str], Awaitable[None]]
MEDIA_OF_FILE_TYPE: dict[str, MediaType] = {"image": "image", "audio": "audio", "video": "video"}


def ended(outcome: str) -> str:
    """The intent the bot resumes with."""
    return "/handoff_ended" + json.dumps({"handoff_outcome": outcome}, separators=(",", ":"))


def started(position: int | None) -> str:
    """The intent the bot says it is transferring with: the place in the queue, or "0"."""
    value = str(position or 0)
    return "/handoff_started" + json.dumps({"handoff_position": value}, separators=(",", ":"))


def resume_words(setting: str) -> frozenset[str]:
    return frozenset(word.strip().casefold() for word in setting.split(",") if word.strip())


def agent_messages(reply: AgentReply, options: ConversionOptions) -> list[OutMessage]:
    """An agent's reply as WhatsApp messages: its text (split at WhatsApp's limit), then
    each attachment as media by link (pure)."""
    messages: list[OutMessage] = []
    if reply.content.strip():
        messages.extend(convert_response({"text": reply.content}, options).messages)
    for attachment in reply.attachments:
        kind = MEDIA_OF_FILE_TYPE.get(attachment.file_type, "document")
        messages.append(Media(kind, link=attachment.data_url))
    return messages


def bot_turns(
    turns: Any, on_new_message: Callable[[UserMessage], Awaitable[Any]], output: Callable[[], Any]
) -> BotTurn:
    """Runs an intent the channel injects (``/handoff_started``…) as a turn of the bot."""

    async def run(wa_id: str, text: str) -> None:
        message_id = f"handoff-{uuid.uuid4().hex}"
        message = UserMessage(
            text, output(), wa_id, input_channel="whatsapp", message_id=message_id
        )
        await turns.run(on_new_message(message))

    return run


class Handoff:
    """One per channel; off (every hook returns at once) while ``CHATWOOT_URL`` is empty."""

    def __init__(
        self,
        settings: WhatsAppSettings,
        metrics: Metrics,
        sender: Sender,
        dedup: DedupStore,
        options: ConversionOptions,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.sender = sender
        self.dedup = dedup
        self.options = options
        self.enabled = bool(settings.chatwoot_url)
        self.client = ChatwootClient(
            ChatwootSettings(
                settings.chatwoot_url,
                settings.chatwoot_account_id,
                settings.chatwoot_inbox_id,
                settings.chatwoot_api_token,
                settings.chatwoot_timeout,
            )
        )
        self.words = resume_words(settings.handoff_resume_words)
        self.waiting = (
            Waiting(settings.redis_url, retention_seconds=settings.channel_retention_seconds)
            if self.enabled
            else Waiting()
        )
        self.webhook = ChatwootWebhook(
            settings.chatwoot_webhook_secret,
            settings.chatwoot_signing_secret,
            settings.chatwoot_inbox_id,
            metrics,
            self.accept,
        )
        self.state: TrackerState | None = None
        self.bot_turn: BotTurn | None = None
        self._chains: dict[str, asyncio.Future[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def bind(self, agent: Callable[[], Any], bot_turn: BotTurn) -> None:
        """Rasa's agent (its tracker and lock stores) and the way to run a bot turn."""
        self.state = TrackerState(agent)
        self.bot_turn = bot_turn

    def start(self) -> None:
        if self.enabled and self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        await asyncio.gather(*self._chains.values(), return_exceptions=True)
        await self.client.close()
        await self.waiting.close()

    # --- the turn runner's hooks ---------------------------------------------------

    async def intercept(self, message: InboundMessage, progress: TurnProgress | None) -> bool:
        """True when the conversation is paused: the message went to the agent (or resumed
        the bot), and the bot's turn must not run."""
        if not self.enabled or self.state is None:
            return False
        rating = rating_of(message)
        if rating is not None:
            self.metrics.handoff_ratings[rating] += 1
        try:
            paused = await self.state.paused(message.wa_id)
        except Exception as exc:
            logger.warning("Could not read the handoff state of %s: %s", message.wamid, exc)
            return False
        if paused is None:
            return False
        if plain_text(message).strip().casefold() in self.words:
            await self.resume(message.wa_id, "citizen")
            return True
        if paused.conversation_id is None:
            return True  # paused by someone else: stay silent, as Rasa would
        try:
            # Under Rasa's lock for the citizen, as a turn is: the forwards of every replica
            # go one at a time, in the order they asked for it (Rasa's ticket order).
            async with self.state.locked(message.wa_id):
                if await self.state.paused(message.wa_id) is None:
                    return False  # resumed meanwhile (resolved, timed out): the bot answers
                await self._forward(message, paused.conversation_id, progress)
        except ChatwootError as exc:
            logger.error("Could not forward %s to Chatwoot: %s", message.wamid, exc)
            self.metrics.handoffs["forward_failed"] += 1
            await self.resume(message.wa_id, "unavailable", tell_chatwoot=False)
        return True

    async def _forward(
        self, message: InboundMessage, conversation: int, progress: TurnProgress | None
    ) -> None:
        limit = self.settings.handoff_attachment_max_bytes
        download = self.sender.provider.download_media

        async def post(_: str) -> None:
            await forward(self.client, download, conversation, message, limit)

        if progress is None:
            await post(message.wamid)
        else:  # one entry in the journal: a turn run again does not post it twice
            await progress.deliver([message.wamid], post)

    async def after_turn(self, message: InboundMessage, request: Mapping[str, Any] | None) -> None:
        """Open the handoff the turn's ``action_handoff`` asked for, if it asked."""
        if request is None or self.bot_turn is None:
            return
        wa_id = message.wa_id
        if not self.enabled or self.state is None:
            logger.warning("A handoff was asked for but CHATWOOT_URL is not set")
            self.metrics.handoffs["unavailable"] += 1
            await self.bot_turn(wa_id, ended("unavailable"))
            return
        try:
            contact = await self.client.contact(wa_id, message.profile_name)
            conversation, new = await self.client.open_conversation(contact)
            note = str(request.get("note") or "")
            if note:
                await self.client.post(conversation, note, private=True)
        except ChatwootError as exc:
            logger.error("Handoff of %s failed, Chatwoot unreachable: %s", mask_phone(wa_id), exc)
            self.metrics.handoffs["unavailable"] += 1
            await self.bot_turn(wa_id, ended("unavailable"))
            return
        position = await self.client.queue_position()
        await self.bot_turn(wa_id, started(position))
        await self.state.pause(wa_id, conversation)
        await self.waiting.start(wa_id)
        self.metrics.handoffs["started"] += 1
        logger.info(
            "Handoff of %s to Chatwoot conversation %d (%s)",
            mask_phone(wa_id),
            conversation,
            "new" if new else "reused",
        )

    # --- Chatwoot's side -----------------------------------------------------------

    async def accept(self, event: ChatwootEvent) -> None:
        """The webhook's sink: deduplicate, then queue behind the citizen's earlier events."""
        if isinstance(event, AgentReply):
            if not await self.dedup.claim(f"chatwoot:{event.message_id}"):
                self.metrics.duplicates_dropped += 1
                logger.info("Duplicate Chatwoot message %d dropped", event.message_id)
                return
            self._chain(event.wa_id, self._deliver(event))
        else:
            self._chain(event.wa_id, self.resume(event.wa_id, "resolved", tell_chatwoot=False))

    async def _deliver(self, reply: AgentReply) -> None:
        started = await self.waiting.take(reply.wa_id)
        if started is not None:
            self.metrics.observe_handoff_wait(max(0.0, time.time() - started))
        await self.sender.send_all(reply.wa_id, agent_messages(reply, self.options))

    async def resume(self, wa_id: str, outcome: str, *, tell_chatwoot: bool = True) -> None:
        """Hand the conversation back to the bot (once, however many ways ask for it)."""
        if self.state is None or self.bot_turn is None:
            return
        was = await self.state.resume(wa_id)
        if was is None:
            return
        await self.waiting.take(wa_id)
        self.metrics.handoffs[outcome] += 1
        logger.info("Handoff of %s ended: %s", mask_phone(wa_id), outcome)
        if tell_chatwoot and was.conversation_id is not None:
            try:
                await self.client.post(was.conversation_id, NOTES[outcome], private=True)
                await self.client.resolve(was.conversation_id)
            except ChatwootError as exc:
                logger.warning(
                    "Could not close Chatwoot conversation %d: %s", was.conversation_id, exc
                )
        await self.bot_turn(wa_id, ended(outcome))

    def _chain(self, wa_id: str, step: Awaitable[None]) -> None:
        previous = self._chains.get(wa_id)

        async def run() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                await step
            except Exception:
                logger.exception("Handoff step for %s failed", mask_phone(wa_id))
            finally:
                if self._chains.get(wa_id) is task:
                    del self._chains[wa_id]

        task = asyncio.ensure_future(run())
        self._chains[wa_id] = task

    async def _sweep(self) -> None:
        timeout = self.settings.handoff_agent_timeout
        while True:
            await asyncio.sleep(min(30.0, timeout / 4))
            try:
                for wa_id in await self.waiting.expired(timeout):
                    self._chain(wa_id, self.resume(wa_id, "timeout"))
            except Exception as exc:
                logger.warning("Could not check handoffs waiting for an agent: %s", exc)


NOTES = {
    "citizen": "O cidadão pediu para voltar ao assistente virtual. Conversa encerrada.",
    "timeout": "Nenhum atendente respondeu a tempo; o cidadão voltou ao assistente virtual.",
    "unavailable": "O assistente virtual retomou a conversa.",
}
