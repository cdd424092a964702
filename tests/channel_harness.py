"""The WhatsApp channel mounted in a Sanic app the way Rasa mounts it, served on loopback."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
from rasa.core.channels.channel import UserMessage, register
from rasa.server import configure_cors
from sanic import Sanic

from bot.addons.whatsapp.channel import WhatsAppInput
from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.inbound.signature import sign
from bot.addons.whatsapp.outbound.messages import OutMessage
from tests.support.stack import free_port

Sanic.test_mode = True  # several apps per test session
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
SERPRO_TOKEN = "test-serpro-webhook-token"
_names = itertools.count()


class RecordingProvider:
    """A provider that records instead of calling WhatsApp."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[tuple[str, OutMessage]] = []
        self.read: list[str] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(self, to: str, message: OutMessage) -> str | None:
        self.sent.append((to, message))
        return f"wamid.SENT{len(self.sent)}"

    async def mark_read(self, message_id: str, typing: bool = False) -> None:
        self.read.append(message_id)

    async def download_media(self, media_id: str) -> tuple[bytes, str]:
        return b"", "application/octet-stream"


@dataclass
class FakeAgent:
    """Stands in for Rasa's agent: records each turn, optionally slowly or blocked."""

    delay: float = 0.0
    gate: asyncio.Event | None = None
    messages: list[UserMessage] = field(default_factory=list)
    active: dict[str, int] = field(default_factory=dict)
    overlaps: int = 0
    peak: int = 0  # the most turns running at once, any senders
    # responses after the echo: a text, or a whole response (e.g. text with buttons)
    also_say: list[str | dict[str, Any]] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)  # message ids its "tracker store" holds

    @property
    def tracker_store(self) -> FakeAgent:
        return self

    async def retrieve(self, sender_id: str) -> Any:
        return SimpleNamespace(events=[SimpleNamespace(message_id=m) for m in self.answered])

    async def handle_message(self, message: UserMessage) -> None:
        sender = message.sender_id or ""
        self.active[sender] = self.active.get(sender, 0) + 1
        if self.active[sender] > 1:
            self.overlaps += 1
        self.peak = max(self.peak, sum(self.active.values()))
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            self.messages.append(message)
            await message.output_channel.send_response(sender, {"text": f"eco: {message.text}"})
            for said in self.also_say:
                response = {"text": said} if isinstance(said, str) else said
                await message.output_channel.send_response(sender, response)
            if message.message_id:
                self.answered.add(message.message_id)
        finally:
            self.active[sender] -= 1


def settings(**overrides: Any) -> WhatsAppSettings:
    values: dict[str, Any] = {
        "access_token": "test-access-token",
        "verify_token": VERIFY_TOKEN,
        "phone_number_id": "100000000000002",
        "app_secret": APP_SECRET,
        "serpro_webhook_token": SERPRO_TOKEN,
        "serpro_client_id": "c",
        "serpro_client_secret": "s",
        "serpro_waba_id": "w",
        "drain_timeout": 10.0,
        # FakeAgent's gates are the test loop's; test_turn_thread.py covers the thread.
        "turn_thread": False,
        "proactive_db_url": "sqlite://",  # in memory: no proactive.db left behind
        # Refusals held 1 ms, not 1 s: the tarpit's path (held, then closed) at test speed;
        # tests/chaos/test_tarpit.py holds them for real.
        "refusal_delay_ms": 1,
        "refusal_rate": 0,  # no answers-a-second bound: tests/chaos/test_tarpit.py has it
    }
    values.update(overrides)
    return WhatsAppSettings(**values)


@dataclass
class Served:
    url: str
    channel: WhatsAppInput
    agent: FakeAgent
    provider: RecordingProvider
    http: aiohttp.ClientSession
    server: Any

    async def post(
        self,
        payload: Any,
        *,
        signed: bool = True,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        body = raw if raw is not None else json.dumps(payload).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if signed:
            all_headers["X-Hub-Signature-256"] = sign(APP_SECRET, body)
        return await self.http.post(
            f"{self.url}/webhooks/whatsapp/webhook", data=body, headers=all_headers
        )

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every accepted message has been handled."""
        assert self.channel.dispatcher is not None
        for _ in range(int(timeout / 0.01)):
            if self.channel.dispatcher.depth == 0:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{self.channel.dispatcher.depth} message(s) still queued")


@asynccontextmanager
async def serve_channel(
    agent: FakeAgent | None = None,
    configure: Callable[[WhatsAppSettings], WhatsAppSettings] | None = None,
    **overrides: Any,
) -> AsyncIterator[Served]:
    provider: Any = overrides.pop("transport", None) or RecordingProvider()
    dedup = overrides.pop("dedup", None)
    payloads = overrides.pop("payloads", None)
    cors = overrides.pop("cors", None)
    port = overrides.pop("port", None) or free_port()
    channel = WhatsAppInput(
        settings(**overrides), provider=provider, dedup=dedup, payloads=payloads
    )
    agent = agent or FakeAgent()
    app = Sanic(f"whatsapp_test_{next(_names)}", configure_logging=False)  # as Rasa does
    app.ctx.agent = agent
    if cors is not None:
        configure_cors(app, cors)  # as `rasa run --cors`
    register([channel], app, route="/webhooks/")
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    http = aiohttp.ClientSession()
    try:
        yield Served(f"http://127.0.0.1:{port}", channel, agent, provider, http, server)
    finally:
        await http.close()
        await server.before_stop()
        await server.close()
        await server.after_stop()
