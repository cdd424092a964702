"""The Rasa ``OutputChannel`` for WhatsApp: each response converted whole, then sent in order.

In a citizen's turn a short text is held until the next response (or the turn's end) so
that a text followed by reply buttons goes out as one billed message
(:mod:`bot.addons.whatsapp.outbound.join`, ``WPP_MERGE_TEXT_BUTTONS``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa.core.channels.channel import OutputChannel

from bot.addons.whatsapp.delivery.progress import TurnProgress
from bot.addons.whatsapp.delivery.turn_thread import on_loop
from bot.addons.whatsapp.logs import mask_phone
from bot.addons.whatsapp.outbound.convert import ConversionOptions, convert_response
from bot.addons.whatsapp.outbound.join import holdable, join
from bot.addons.whatsapp.outbound.messages import OutMessage, Text
from bot.addons.whatsapp.outbound.sender import Sender
from bot.addons.whatsapp.outbound.short_keys import PayloadStore

logger = logging.getLogger(__name__)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class WhatsAppOutput(OutputChannel):
    """Sends the bot's responses to one WhatsApp user.

    Rasa calls :meth:`send_response` once per bot utterance, in order; the whole response
    dict (text, buttons, image, custom, attachment, elements) is converted at once so the
    pieces come out as the right WhatsApp messages (e.g. text + image ▸ a captioned image).

    With ``join_text_and_buttons`` (set by the turn runner, which calls :meth:`flush` when
    the turn ends) a text followed by reply buttons becomes one message; outputs made
    elsewhere (Rasa's HTTP API, injected handoff turns) have no turn end to flush at and
    send each response at once.
    """

    def __init__(
        self,
        sender: Sender,
        payloads: PayloadStore,
        options: ConversionOptions,
        progress: TurnProgress | None = None,
    ) -> None:
        self.sender = sender
        self.payloads = payloads
        self.options = options
        self.progress = progress
        self.responses = 0  # responses Rasa handed over during this turn
        self.handoff: dict[str, Any] | None = None  # action_handoff's request, for the turn runner
        self.join_text_and_buttons = False
        self._held: tuple[str, Text] | None = None  # recipient, text awaiting the next response
        self._home = _running_loop()  # the server's loop, where sends happen

    @classmethod
    def name(cls) -> str:
        return "whatsapp"

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        """Called by Rasa (on the turn thread): convert, then send from the server's loop,
        where the HTTP session and the Redis connections live."""
        self.responses += 1
        home = self._home or asyncio.get_running_loop()
        await on_loop(home, self._send_response(recipient_id, message))

    async def _send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        custom = message.get("custom")
        if isinstance(custom, dict) and isinstance(custom.get("handoff"), dict):
            self.handoff = custom["handoff"]  # not for WhatsApp: see handoff/service.py
            return
        conversion = convert_response(message, self.options)
        for problem in conversion.problems:
            logger.error(
                "Response %s for %s: %s",
                message.get("utter_action") or "(custom action)",
                mask_phone(recipient_id),
                problem,
            )
        if conversion.payload_keys:
            await self.payloads.remember(conversion.payload_keys)
        messages: list[OutMessage] = conversion.messages
        if self._held is not None:
            joined = join(self._held[1], messages) if self._held[0] == recipient_id else None
            if joined is None:
                await self.flush()
            else:
                self._held, messages = None, joined
        text = holdable(messages) if self.join_text_and_buttons else None
        if text is not None:
            self._held = (recipient_id, text)
            return
        await self._deliver(recipient_id, messages)

    async def flush(self) -> None:
        """Send the text still held (the turn ended, or what followed could not join it)."""
        if self._held is not None:
            (recipient_id, text), self._held = self._held, None
            await self._deliver(recipient_id, [text])

    async def _deliver(self, recipient_id: str, messages: list[OutMessage]) -> None:
        if not messages:
            return
        if self.progress is None:
            await self.sender.send_all(recipient_id, messages)
            return
        await self.progress.deliver(
            messages, lambda body: self.sender.send_all(recipient_id, [body])
        )

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text})

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"image": image})

    async def send_attachment(self, recipient_id: str, attachment: Any, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"attachment": attachment})

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        await self.send_response(recipient_id, {"text": text, "buttons": buttons})

    async def send_quick_replies(
        self, recipient_id: str, text: str, quick_replies: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        await self.send_response(recipient_id, {"text": text, "quick_replies": quick_replies})

    async def send_elements(self, recipient_id: str, elements: Any, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"elements": elements})

    async def send_custom_json(self, recipient_id: str, json_message: Any, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"custom": json_message})
