"""A local fake of Serpro's WhatsApp API: token endpoint with expiry, send endpoints that
record bodies, 401 for an expired or unknown token, and webhook registration."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.stack import free_port

CLIENT_ID, CLIENT_SECRET = "serpro-client", "serpro-secret"


@dataclass
class FakeSerpro:
    expires_in: int | None = 600
    token_delay: float = 0.0
    refuse_json_registration: bool = False
    clock: Callable[[], float] = time.monotonic
    tokens: dict[str, float] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reads: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def expire_all(self) -> None:
        self.tokens = {t: 0.0 for t in self.tokens}

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        expires = self.tokens.get(header.removeprefix("Bearer "))
        return expires is not None and expires > self.clock()

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_requests.append({k: str(v) for k, v in form.items()})
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return web.json_response(
                {"error": "invalid_client", "error_description": "Bad credentials"}, status=401
            )
        token = f"token-{next(self._ids)}"
        self.tokens[token] = self.clock() + (self.expires_in or 600)
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return web.json_response(body)

    async def send(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"message": "Unauthorized"}, status=401)
        kind = request.match_info["kind"]
        self.sent.append((kind, await request.json()))
        return web.json_response({"idRequisicao": f"REQ{len(self.sent):04d}"}, status=201)

    async def read(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"message": "Unauthorized"}, status=401)
        self.reads.append(await request.json())
        return web.json_response({"ok": True})

    async def register(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"message": "Unauthorized"}, status=401)
        if request.content_type == "application/json":
            if self.refuse_json_registration:
                return web.json_response({"mensagem": "Formato inválido"}, status=400)
            body = await request.json()
            uri, token = body["uri"], body.get("jwtToken")
        else:
            uri, token = (await request.text()).strip(), None
        self.webhooks.append(
            {
                "id": f"wh{len(self.webhooks) + 1}",
                "uri": uri,
                "jwtToken": token,
                "fromPhoneNumberId": CLIENT_ID,
            }
        )
        return web.json_response({"id": self.webhooks[-1]["id"]}, status=201)

    async def list_webhooks(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"message": "Unauthorized"}, status=401)
        return web.json_response({"data": self.webhooks})

    async def delete_webhook(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"message": "Unauthorized"}, status=401)
        before = len(self.webhooks)
        self.webhooks = [w for w in self.webhooks if w["id"] != request.match_info["id"]]
        return web.Response(status=204 if len(self.webhooks) < before else 404)


def build_app(fake: FakeSerpro) -> web.Application:
    app = web.Application()
    app.router.add_post("/oauth2/token", fake.token)
    app.router.add_post("/client/{client}/v2/requisicao/mensagem/{kind}", fake.send)
    app.router.add_post("/client/{client}/v2/requisicao/informacao-de-leitura", fake.read)
    app.router.add_post("/client/{client}/v2/webhook", fake.register)
    app.router.add_get("/client/{client}/v2/webhook", fake.list_webhooks)
    app.router.add_delete("/client/{client}/v2/webhook/{id}", fake.delete_webhook)
    return app


@asynccontextmanager
async def running_serpro(fake: FakeSerpro | None = None) -> AsyncIterator[FakeSerpro]:
    fake = fake or FakeSerpro()
    runner = web.AppRunner(build_app(fake))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()
