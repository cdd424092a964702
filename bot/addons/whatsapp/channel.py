"""The WhatsApp input channel: verified webhooks ▸ deduplicated, ordered Rasa turns.

Routes, under ``/webhooks/whatsapp/``:

* ``GET  /webhook``  Meta's subscription handshake (``hub.challenge``).
* ``POST /webhook``  events. Authenticated (Meta: HMAC of the raw body; Serpro: shared
  token), parsed, deduplicated by ``wamid`` and queued per sender; answered 200 as soon as
  they are queued — NLU and actions never run on the request path. A full queue, a
  shutdown in progress or an unreachable dedup store answers 503 so the provider
  redelivers later.
* ``POST /relay``    messages the ingress (``python -m bot.addons.whatsapp.ingress``)
  acknowledged, signed with the provider's secret; see :mod:`bot.addons.whatsapp.ingress.relay`.
* ``GET  /health``   JSON: provider, queue depth, ok.
* ``GET  /metrics``  Prometheus text.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.shared.exceptions import InvalidConfigException
from sanic import Blueprint, response
from sanic.log import access_logger as sanic_access_logger
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic_cors.core import SANIC_CORS_EVALUATED

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.delivery.dedup import DedupStore, Orphan, create_dedup_store
from bot.addons.whatsapp.delivery.sender_queue import Dispatcher
from bot.addons.whatsapp.delivery.turn_thread import TurnThread
from bot.addons.whatsapp.errors import ConfigurationError
from bot.addons.whatsapp.inbound.events import InboundMessage
from bot.addons.whatsapp.inbound.to_rasa import reply_id, user_text, whatsapp_metadata
from bot.addons.whatsapp.inbound.webhook import Intake, Reply
from bot.addons.whatsapp.logs import MASK_FILTER, install_log_masking
from bot.addons.whatsapp.metrics import Metrics
from bot.addons.whatsapp.outbound.convert import ConversionOptions
from bot.addons.whatsapp.outbound.messages import Text
from bot.addons.whatsapp.outbound.sender import Sender
from bot.addons.whatsapp.outbound.short_keys import PayloadStore, create_payload_store
from bot.addons.whatsapp.output import TurnProgress, WhatsAppOutput
from bot.addons.whatsapp.providers import create_provider
from bot.addons.whatsapp.providers.base import Provider

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Queued:
    """A message accepted by the webhook, waiting for its turn."""

    message: InboundMessage
    received_at: float
    adopted: bool = False  # taken over from a process that died before finishing it
    already_sent: int = 0  # replies that process had delivered


class DispatchSink:
    """The intake's sink inside ``rasa run``: the per-sender dispatcher of turns."""

    def __init__(self) -> None:
        self.dispatcher: Dispatcher[Queued] | None = None

    @property
    def accepting(self) -> bool:
        return self.dispatcher is not None and self.dispatcher.accepting

    @property
    def depth(self) -> int:
        return self.dispatcher.depth if self.dispatcher is not None else 0

    def room(self) -> int:
        return self.dispatcher.room() if self.dispatcher is not None else 0

    def submit(self, messages: Sequence[InboundMessage], force: bool = False) -> bool:
        if self.dispatcher is None:
            return False
        now = time.monotonic()
        return self.dispatcher.submit([Queued(m, now) for m in messages], force=force)


def _skip_cors(request: Request) -> None:
    """Mark the request's CORS as handled: Meta's and Serpro's calls are server to
    server, and Rasa's CORS middleware cost ~10 % of the event loop's time per webhook."""
    setattr(request.ctx, SANIC_CORS_EVALUATED, "1")


def _respond(reply: Reply) -> HTTPResponse:
    if isinstance(reply.body, str):
        return response.text(reply.body, status=reply.status)
    return response.json(reply.body, status=reply.status)


def _quiet_access_log(app: Any) -> None:
    """Sanic builds an access-log record for every request (URL, address) even when Rasa's
    LOG_LEVEL_LIBRARIES (ERROR by default) drops it; skip that work when nobody reads it."""
    if not sanic_access_logger.isEnabledFor(logging.INFO):
        app.config.ACCESS_LOG = False


class WhatsAppInput(InputChannel):
    """Rasa input channel for WhatsApp through Meta's Cloud API or Serpro.

    Register it in ``credentials.yml`` as ``bot.addons.whatsapp.WhatsAppInput``.
    """

    def __init__(
        self,
        settings: WhatsAppSettings,
        provider: Provider | None = None,
        dedup: DedupStore | None = None,
        payloads: PayloadStore | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.provider = provider or create_provider(settings)
        self.sender = Sender.from_settings(self.provider, settings, self.metrics)
        self.dedup = dedup or create_dedup_store(
            settings.redis_url,
            settings.dedup_ttl_seconds,
            settings.dedup_max_entries,
            settings.lease_seconds,
        )
        self.payloads = payloads or create_payload_store(settings.redis_url)
        self.options = ConversionOptions(
            list_button_label=settings.list_button_label, preview_urls=settings.preview_urls
        )
        self.sink = DispatchSink()
        self.intake = Intake(settings, self.metrics, self.dedup, self.sink)
        self.turns = TurnThread()
        self._background: set[asyncio.Task[Any]] = set()
        self._lease_task: asyncio.Task[None] | None = None
        self._adopted: list[Orphan] = []
        self._app: Any = None  # the Sanic app: its agent's tracker store tells finished turns
        self._started = False
        self._told_about_thread = False

    @property
    def dispatcher(self) -> Dispatcher[Queued] | None:
        return self.sink.dispatcher

    @classmethod
    def name(cls) -> str:
        return "whatsapp"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> WhatsAppInput:
        """The channel for ``rasa run``, from its ``credentials.yml`` section.

        Raises:
            InvalidConfigException: naming the variable of a missing or invalid setting;
                ``rasa run`` prints Rasa's own exceptions as one line, not a traceback.
        """
        try:
            settings = WhatsAppSettings.from_credentials(credentials)
        except ConfigurationError as error:
            raise InvalidConfigException(str(error)) from error
        return cls(settings)

    def get_output_channel(self, progress: TurnProgress | None = None) -> WhatsAppOutput:
        return WhatsAppOutput(self.sender, self.payloads, self.options, progress)

    # --- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Open the provider's HTTP session (server start)."""
        if not self._started:
            install_log_masking()
            await self.sender.start()
            if self.settings.turn_thread:
                self.turns.start()
            if self.dedup.journaled:
                try:  # hold the lease before the first claim
                    await self.dedup.keep_alive(adopt=False)
                except Exception as exc:
                    logger.warning("Could not take a lease on Redis: %s", exc)
            self._started = True
            logger.info(
                "WhatsApp channel ready: provider=%s phone_number_id=%s",
                self.settings.provider,
                self.settings.phone_number_id or self.settings.serpro_client_id,
            )

    async def drain(self) -> None:
        """Stop accepting; finish what was acknowledged (server stop)."""
        if self.dispatcher is not None:
            pending = self.dispatcher.depth
            if pending:
                logger.info("Shutdown: finishing %d acknowledged message(s)", pending)
            await self.dispatcher.drain(self.settings.drain_timeout)

    async def stop(self) -> None:
        """Close connections (after the server stopped)."""
        if self._lease_task is not None:
            self._lease_task.cancel()
            await asyncio.gather(self._lease_task, return_exceptions=True)
            self._lease_task = None
            try:
                await self.dedup.retire()
            except Exception as exc:
                logger.warning("Could not give up the lease: %s", exc)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        self.turns.stop()
        await self.sender.close()
        await self.dedup.close()
        await self.payloads.close()
        self._started = False

    # --- handling ----------------------------------------------------------------

    def _make_handler(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Callable[[Queued], Awaitable[None]]:
        async def handle(item: Queued) -> None:
            message = item.message
            MASK_FILTER.remember(message.wa_id)
            if item.adopted and await self._turn_recorded(message):
                logger.info("Adopted message %s was already answered", message.wamid)
                await self._finish(message.wamid)
                return
            if self.settings.mark_read and not item.adopted:
                self._in_background(self._mark_read(message.wamid))
            text = user_text(message, self.settings.intents)
            if reply_id(message) is not None:
                text = await self.payloads.resolve(text)
            progress = None
            if self.dedup.journaled:
                progress = TurnProgress(self._sent_counter(message.wamid), item.already_sent)
            output = self.get_output_channel(progress)
            try:
                await self.turns.run(
                    on_new_message(
                        UserMessage(
                            text,
                            output,
                            sender_id=message.wa_id,
                            input_channel=self.name(),
                            message_id=message.wamid,
                            metadata={"whatsapp": whatsapp_metadata(message)},
                        )
                    )
                )
                self.metrics.messages_handled += 1
            except Exception:
                self.metrics.handling_errors += 1
                logger.exception("The bot's turn for %s failed", message.wamid)
            finally:
                if output.responses == 0:
                    await self._break_silence(message)
                await self._finish(message.wamid)
                self.metrics.observe_latency(time.monotonic() - item.received_at)

        return handle

    # --- the journal: what a killed process acknowledged is finished by another ----

    def _sent_counter(self, wamid: str) -> Callable[[], Awaitable[None]]:
        async def record_sent() -> None:
            try:
                await self.dedup.count_sent(wamid)
            except Exception as exc:
                logger.warning("Could not count a reply to %s: %s", wamid, exc)

        return record_sent

    async def _finish(self, wamid: str) -> None:
        try:
            await self.dedup.finish(wamid)
        except Exception as exc:
            logger.warning("Could not close the journal entry of %s: %s", wamid, exc)

    async def _turn_recorded(self, message: InboundMessage) -> bool:
        """Whether Rasa's tracker already holds this message (its turn was completed)."""
        agent = getattr(getattr(self._app, "ctx", None), "agent", None)
        tracker_store = getattr(agent, "tracker_store", None)
        if tracker_store is None:
            return False
        try:
            tracker = await tracker_store.retrieve(message.wa_id)
        except Exception as exc:
            logger.warning("Could not read the tracker for %s: %s", message.wamid, exc)
            return False
        events = tracker.events if tracker is not None else []
        return any(getattr(event, "message_id", None) == message.wamid for event in events)

    async def _keep_lease(self) -> None:
        try:
            orphans = await self.dedup.keep_alive(adopt=True)
        except Exception as exc:
            logger.warning("Could not renew the lease on Redis: %s", exc)
            return
        if orphans:
            logger.warning(
                "Taking over %d message(s) acknowledged by a process that stopped", len(orphans)
            )
            self.metrics.messages_adopted += len(orphans)
            self._adopted.extend(orphans)
        if self._adopted and self.dispatcher is not None:
            now = time.monotonic()
            while self._adopted and self.dispatcher.submit(
                [Queued(self._adopted[0].message, now, True, self._adopted[0].already_sent)]
            ):
                self._adopted.pop(0)

    async def _lease_loop(self) -> None:
        while True:
            await self._keep_lease()
            await asyncio.sleep(self.settings.lease_seconds / 3)

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

    # --- routes ------------------------------------------------------------------

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("whatsapp_webhook", __name__)
        self.sink.dispatcher = Dispatcher(
            self._make_handler(on_new_message),
            key=lambda item: item.message.wa_id,
            max_concurrency=self.settings.max_concurrency,
            queue_size=self.settings.queue_size,
        )

        @bp.listener("before_server_start")
        async def _start(app: Any, loop: Any) -> None:
            _quiet_access_log(app)
            await self.start()

        @bp.listener("after_server_start")
        async def _take_over(app: Any, loop: Any) -> None:
            # Only now is Rasa's agent loaded: adopted turns can run.
            self._app = app
            # The model is loaded: keep its ~1 GB of objects out of every later garbage
            # collection, whose full passes otherwise stop both threads for ~0.5 s.
            gc.freeze()
            if self.dedup.journaled and self._lease_task is None:
                self._lease_task = asyncio.ensure_future(self._lease_loop())

        @bp.listener("before_server_stop")
        async def _drain(app: Any, loop: Any) -> None:
            await self.drain()

        @bp.listener("after_server_stop")
        async def _stop(app: Any, loop: Any) -> None:
            await self.stop()

        @bp.route("/", methods=["GET"])
        async def index(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/health", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            accepting = self.dispatcher is not None and self.dispatcher.accepting
            ok = accepting and self._started
            return response.json(
                {
                    "ok": ok,
                    "provider": self.settings.provider,
                    "queue_depth": self.sink.depth,
                    "accepting": accepting,
                },
                status=200 if ok else 503,
            )

        @bp.route("/metrics", methods=["GET"])
        async def metrics(request: Request) -> HTTPResponse:
            return response.text(
                self.metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8"
            )

        @bp.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            _skip_cors(request)
            return _respond(self.intake.verify(request.args))

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            _skip_cors(request)
            return _respond(
                await self.intake.receive(request.body or b"", request.headers, request.args)
            )

        @bp.route("/relay", methods=["POST"])
        async def relay(request: Request) -> HTTPResponse:
            _skip_cors(request)
            if self.turns.running and not self._told_about_thread:
                self._told_about_thread = True
                logger.warning(
                    "Messages arrive through the ingress while WPP_TURN_THREAD is on: the "
                    "thread only costs throughput here (~12 %%); set WPP_TURN_THREAD=false"
                )
            return _respond(await self.intake.receive_relay(request.body or b"", request.headers))

        return bp
