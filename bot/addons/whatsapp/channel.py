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
* ``POST /chatwoot/<secret>``  Chatwoot's webhook (agents' replies, resolved
  conversations); see :mod:`bot.addons.whatsapp.handoff`.
* ``POST /notify``, ``GET /notify/<id>``  notifications: :mod:`~.proactive.notify`.
* ``GET  /health``   JSON: provider, queue depth, ok.
* ``GET  /metrics``  Prometheus text.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.shared.exceptions import InvalidConfigException
from sanic import Blueprint, response
from sanic.log import access_logger as sanic_access_logger
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic_cors.core import SANIC_CORS_EVALUATED

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.delivery.dedup import DedupStore, create_dedup_store
from bot.addons.whatsapp.delivery.journal import Orphan
from bot.addons.whatsapp.delivery.lease import Lease
from bot.addons.whatsapp.delivery.progress import Journal, TurnProgress
from bot.addons.whatsapp.delivery.sender_queue import Dispatcher, DispatchSink, Queued
from bot.addons.whatsapp.delivery.turn import CHANNEL_NAME, TurnRunner
from bot.addons.whatsapp.delivery.turn_thread import TurnThread
from bot.addons.whatsapp.errors import ConfigurationError
from bot.addons.whatsapp.handoff.service import Handoff, bot_turns
from bot.addons.whatsapp.inbound.routing import create_state
from bot.addons.whatsapp.inbound.webhook import Intake, Reply
from bot.addons.whatsapp.logs import install_log_masking
from bot.addons.whatsapp.metrics import Metrics
from bot.addons.whatsapp.outbound.convert import ConversionOptions
from bot.addons.whatsapp.outbound.sender import Sender
from bot.addons.whatsapp.outbound.short_keys import PayloadStore, create_payload_store
from bot.addons.whatsapp.output import WhatsAppOutput
from bot.addons.whatsapp.proactive.service import Proactive
from bot.addons.whatsapp.providers import create_provider
from bot.addons.whatsapp.providers.base import Provider
from bot.addons.whatsapp.voice.service import VoiceNotes

logger = logging.getLogger(__name__)


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

    Register it in ``credentials.yml`` as ``bot.addons.whatsapp.WhatsAppInput``. It keeps
    Rasa's contract (name, credentials, output channel, blueprint), the routes and the
    lifecycle; a message's turn is :class:`~.delivery.turn.TurnRunner`'s, its journal
    :mod:`~.delivery.journal`'s.
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
        self.state = create_state(settings.redis_url, settings.channel_retention_seconds)
        self.sender = Sender.from_settings(self.provider, settings, self.metrics, self.state)
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
        self.intake = Intake(settings, self.metrics, self.dedup, self.sink, self.state)
        self.turns = TurnThread()
        self.journal = Journal(self.dedup)
        self.lease = Lease(self.dedup, settings.lease_seconds, self.metrics, self._adopt)
        self.handoff = Handoff(settings, self.metrics, self.sender, self.dedup, self.options)
        self.voice = VoiceNotes.from_settings(settings, self.metrics)  # checks the model
        self.proactive = Proactive.attach(self)  # the notify API, statuses, consent words
        self._runner: TurnRunner | None = None
        self._app: Any = None  # the Sanic app: its agent's tracker store tells finished turns
        self._started = False
        self._told_about_thread = False

    @property
    def dispatcher(self) -> Dispatcher[Queued] | None:
        return self.sink.dispatcher

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> WhatsAppInput:
        """The channel for ``rasa run``, from its ``credentials.yml`` section.

        Raises:
            InvalidConfigException: naming the variable of a missing or invalid setting;
                ``rasa run`` prints Rasa's own exceptions as one line, not a traceback.
        """
        try:
            settings = WhatsAppSettings.from_credentials(credentials)
            return cls(settings)
        except ConfigurationError as error:
            raise InvalidConfigException(str(error)) from error

    def get_output_channel(self, progress: TurnProgress | None = None) -> WhatsAppOutput:
        return WhatsAppOutput(self.sender, self.payloads, self.options, progress)

    # --- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Open the provider's HTTP session and hold the lease (server start)."""
        if not self._started:
            install_log_masking()
            await self.sender.start()
            if self.settings.turn_thread:
                self.turns.start()
            await self.lease.hold()  # before the first claim
            self._started = True
            logger.info(
                "WhatsApp channel ready: provider=%s phone_number_id=%s",
                self.settings.provider,
                self.settings.phone_number_id or self.settings.serpro_client_id,
            )
            logger.info(
                "Voice notes: backend=%s%s",
                self.settings.voice_backend,
                "" if self.voice else " (a voice note gets a reply asking to type)",
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
        await self.lease.stop()
        if self._runner is not None:
            await self._runner.close()
        await self.handoff.close()
        if self.voice is not None:
            await self.voice.close()
        await self.proactive.close()
        self.turns.stop()
        await self.sender.close()
        await self.dedup.close()
        await self.payloads.close()
        await self.state.close()
        self._started = False

    def _adopt(self, orphan: Orphan) -> bool:
        return self.sink.adopt(orphan.message, orphan.already_sent)

    def _tracker_store(self) -> Any:
        agent = getattr(getattr(self._app, "ctx", None), "agent", None)
        return getattr(agent, "tracker_store", None)

    # --- routes ------------------------------------------------------------------

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("whatsapp_webhook", __name__)
        self._runner = TurnRunner(
            self.settings,
            self.metrics,
            self.provider,
            self.sender,
            self.payloads,
            self.journal,
            self.turns,
            self.get_output_channel,
            self._tracker_store,
            on_new_message,
        )
        self._runner.handoff = self.handoff
        self._runner.voice = self.voice
        self._runner.proactive = self.proactive
        self.proactive.add_routes(bp, _respond)  # /notify, /notify/<id>
        self.handoff.bind(
            lambda: self._app.ctx.agent,
            bot_turns(self.turns, on_new_message, self.get_output_channel),
        )
        self.sink.dispatcher = Dispatcher(
            self._runner,
            key=lambda item: item.message.wa_id,
            max_concurrency=self.settings.max_concurrency,
            queue_size=self.settings.queue_size,
            key_queue_size=self.settings.sender_queue_size,
        )

        @bp.listener("before_server_start")
        async def _start(app: Any, loop: Any) -> None:
            _quiet_access_log(app)
            # Sanic reads up to 100 MB by default before the webhook's own size check;
            # read per connection, so set before the first one.
            app.config.REQUEST_MAX_SIZE = limits.REQUEST_BODY_MAX_BYTES
            await self.start()

        @bp.listener("after_server_start")
        async def _take_over(app: Any, loop: Any) -> None:
            # Only now is Rasa's agent loaded: adopted turns can run.
            self._app = app
            # The model is loaded: keep its ~1 GB of objects out of every later garbage
            # collection, whose full passes otherwise stop both threads for ~0.5 s.
            gc.freeze()
            self.lease.start()
            self.handoff.start()

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
            return _respond(await self.intake.held(self.intake.verify(request.args)))

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            _skip_cors(request)
            # Sanic never decompresses, and has read at most REQUEST_MAX_SIZE bytes.
            refused = self.intake.refuse_encoded(request.headers)
            if refused is not None:
                return _respond(await self.intake.held(refused))
            body = request.body or b""
            reply = await self.intake.receive(body, request.headers, request.args)
            return _respond(await self.intake.held(reply))

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

        @bp.route("/chatwoot/<secret>", methods=["POST"])
        async def chatwoot(request: Request, secret: str) -> HTTPResponse:
            _skip_cors(request)
            return _respond(
                await self.handoff.webhook.receive(secret, request.body or b"", request.headers)
            )

        return bp
