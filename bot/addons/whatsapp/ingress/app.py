"""The webhook in its own process, in front of ``rasa run``:
``python -m bot.addons.whatsapp.ingress --port 5006 --rasa-url http://localhost:5005``.

It serves the same routes Meta and Serpro call on the channel (``/webhooks/whatsapp/
webhook``, ``/health``, ``/metrics``) with the same code (:class:`~.intake.Intake`):
authenticate ▸ parse ▸ deduplicate and journal ▸ 200. Then :class:`~.relay.Relay` hands
the messages to ``rasa run``, which runs the turns and sends the replies. Rasa's NLU never
shares a process (or a GIL) with the webhook, so the 200 comes in milliseconds however
busy the bot is, and ``rasa run`` spends all of its process on turns.

Settings come from the same ``credentials.yml`` and environment as the channel
(``WPP_PROVIDER``, the provider's secret, ``REDIS_URL``, ``WPP_QUEUE_SIZE`` …). With
``REDIS_URL`` the ingress journals what it acknowledges under its own lease: if it dies
before relaying, a ``rasa run`` process adopts the journal and answers those messages.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.delivery.dedup import DedupStore, create_dedup_store
from bot.addons.whatsapp.delivery.lease import Lease
from bot.addons.whatsapp.errors import ConfigurationError
from bot.addons.whatsapp.inbound.webhook import Intake, Reply
from bot.addons.whatsapp.ingress.relay import Relay
from bot.addons.whatsapp.logs import install_log_masking
from bot.addons.whatsapp.metrics import Metrics
from bot.addons.whatsapp.proactive.deliveries import DeliveryRecorder

logger = logging.getLogger(__name__)

CHANNEL_KEY = "bot.addons.whatsapp.WhatsAppInput"
DEFAULT_PORT = 5006
# A body refused on the request's head and no larger than this is read and discarded, so
# the connection can serve the next request; a larger one is not read at all.
UNREAD_DISCARD_MAX_BYTES = 64 * 1024
_ENV_REF = re.compile(r"\$\{([^}:]+)\}")


def channel_credentials(path: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """The channel's section of ``credentials.yml``, ``${VAR}`` substituted as Rasa does.

    Raises:
        ConfigurationError: naming the file or the undefined variable.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"Cannot read {path}: {exc}") from None
    if not isinstance(document, dict) or CHANNEL_KEY not in document:
        raise ConfigurationError(f"{path} has no '{CHANNEL_KEY}' section")
    # An empty section is the usual one: every value comes from the environment.
    section = document[CHANNEL_KEY] or {}
    if not isinstance(section, dict):
        raise ConfigurationError(f"{path} has no '{CHANNEL_KEY}' section")

    def substitute(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: substitute(item) for key, item in value.items()}
        if not isinstance(value, str):
            return value
        for name in _ENV_REF.findall(value):
            if name not in environ:
                raise ConfigurationError(
                    f"The WhatsApp ingress cannot start: set the environment variable {name} "
                    f"(used in {path}; see variables.env.example)"
                )
        return _ENV_REF.sub(lambda match: environ[match.group(1)], value)

    return dict(substitute(section))


class Ingress:
    """The ingress's state: intake, relay, dedup store (and its lease) and metrics."""

    def __init__(
        self, settings: WhatsAppSettings, rasa_url: str, dedup: DedupStore | None = None
    ) -> None:
        self.settings = settings
        self.metrics = Metrics(ingress=True)
        self.dedup = dedup or create_dedup_store(
            settings.redis_url,
            settings.dedup_ttl_seconds,
            settings.dedup_max_entries,
            settings.lease_seconds,
        )
        self.relay = Relay(
            rasa_url,
            settings.relay_secret,
            self.dedup.owner,
            self.metrics,
            queue_size=settings.queue_size,
            sender_queue_size=settings.sender_queue_size,
        )
        self.intake = Intake(settings, self.metrics, self.dedup, self.relay)
        # Statuses stop here (only messages are relayed): record them for notifications.
        self.deliveries = DeliveryRecorder(settings)
        self.intake.triage.listeners.append(self.deliveries.observe)
        # Renew only: the turns of a dead ingress are rasa run's to adopt.
        self.lease = Lease(self.dedup, settings.lease_seconds, self.metrics)

    def app(self) -> web.Application:
        # No automatic decompression: a compressed webhook is refused on its header
        # (Intake.refuse_unread), and what aiohttp still reads of it to close the
        # connection cleanly stays the few compressed bytes it is.
        app = web.Application(
            client_max_size=limits.REQUEST_BODY_MAX_BYTES,
            handler_args={"auto_decompress": False},
        )
        base = "/webhooks/whatsapp"
        app.router.add_get(f"{base}/", self._index)
        app.router.add_get(f"{base}/webhook", self._verify)
        app.router.add_post(f"{base}/webhook", self._receive)
        app.router.add_get(f"{base}/health", self._health)
        app.router.add_get(f"{base}/metrics", self._metrics)
        app.cleanup_ctx.append(self._lifecycle)
        return app

    # --- lifecycle ------------------------------------------------------------------

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        await self.start()
        yield
        await self.drain()
        await self.stop()

    async def start(self) -> None:
        install_log_masking()
        await self.lease.hold()
        self.lease.start()
        self.relay.start()
        logger.info(
            "WhatsApp ingress ready: provider=%s, relaying to %s",
            self.settings.provider,
            self.relay.url,
        )

    async def drain(self) -> None:
        """Stop accepting (503), relay what was acknowledged, for up to WPP_DRAIN_TIMEOUT."""
        pending = self.relay.depth
        if pending:
            logger.info("Shutdown: relaying %d acknowledged message(s)", pending)
        left = await self.relay.drain(self.settings.drain_timeout)
        if not left:
            return
        if self.dedup.journaled:
            logger.warning(
                "Shutdown: %d acknowledged message(s) not relayed; they stay in the journal "
                "and a rasa run process adopts them",
                left,
            )
        else:
            logger.error(
                "Shutdown: %d acknowledged message(s) not relayed and lost (rasa run "
                "unreachable; set REDIS_URL to keep them)",
                left,
            )

    async def stop(self) -> None:
        await self.relay.close()
        await self.lease.stop()  # the journal's leftovers are adopted at once
        await self.dedup.close()
        await self.intake.state.close()  # identity map and thread owners
        await self.deliveries.close()

    # --- routes ---------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _verify(self, request: web.Request) -> web.Response:
        return await self._answer(request, self.intake.verify(request.query))

    async def _receive(self, request: web.Request) -> web.Response:
        # Before reading: aiohttp decompresses as it reads, and reads up to client_max_size.
        refused = self.intake.refuse_unread(request.headers, request.query, request.content_length)
        if refused is not None:
            return await self._answer(request, refused, request.content_length)
        body = await request.read()
        return await self._answer(
            request, await self.intake.receive(body, request.headers, request.query)
        )

    async def _answer(
        self, request: web.Request, reply: Reply, unread: int | None = 0
    ) -> web.Response:
        """``reply`` as the response; a refusal before authentication first held by the
        tarpit (:meth:`Intake.held`).

        Such a refusal's connection is closed after it when the tarpit is on (the client
        waits for its next refusal on a new connection), and when ``unread`` (the declared
        size of a body left unread, None if unknown) is over ``UNREAD_DISCARD_MAX_BYTES``:
        aiohttp would read the rest only to discard it (~2.5 ms of CPU per 3 MiB, for up
        to 10 s), so a flood of large bodies would take the ingress's CPU. A small unread
        body is otherwise discarded, unparsed, and the connection kept.
        """
        tarpit = self.intake.tarpit
        if not tarpit.applies(reply.status):
            return _respond(reply)
        response = _respond(await self.intake.held(reply))
        if tarpit.closes or unread is None or unread > UNREAD_DISCARD_MAX_BYTES:
            response.force_close()  # "Connection: close", so the client opens a new one
            await response.prepare(request)
            await response.write_eof()
            request.protocol.force_close()  # the answer is flushed before the socket closes
        return response

    async def _health(self, request: web.Request) -> web.Response:
        accepting = self.relay.accepting
        return web.json_response(
            {
                "ok": accepting,
                "role": "ingress",
                "provider": self.settings.provider,
                "queue_depth": self.relay.depth,
                "accepting": accepting,
                "rasa_reachable": self.relay.reachable,
            },
            status=200 if accepting else 503,
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.metrics.render(), content_type="text/plain", charset="utf-8")


def _respond(reply: Reply) -> web.Response:
    if isinstance(reply.body, str):
        return web.Response(text=reply.body, status=reply.status)
    return web.json_response(reply.body, status=reply.status)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="python -m bot.addons.whatsapp.ingress",
        description="The WhatsApp webhook in its own process, relaying to rasa run.",
    )
    # Every interface, as rasa run: Meta and Serpro call the webhook from outside.
    parser.add_argument("--host", default=env.get("WPP_INGRESS_HOST", "0.0.0.0"))  # noqa: S104
    parser.add_argument("--port", type=int, default=int(env.get("WPP_INGRESS_PORT", DEFAULT_PORT)))
    parser.add_argument(
        "--rasa-url",
        default=env.get("WPP_RASA_URL", "http://localhost:5005"),
        help="where rasa run serves the channel (default: WPP_RASA_URL or localhost:5005)",
    )
    parser.add_argument("--credentials", type=Path, default=Path("credentials.yml"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=env.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)-8s %(name)s  - %(message)s",
    )
    try:
        settings = WhatsAppSettings.from_credentials(
            channel_credentials(args.credentials, env), env
        )
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop  # Sanic's dependency, so present wherever rasa is

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        Ingress(settings, args.rasa_url).app(),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
    )
    return 0
