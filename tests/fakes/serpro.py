"""A local fake of Serpro's WhatsApp API: token endpoint with expiry, send endpoints that
record the bodies they accept and refuse (400) what the documented bodies would not carry
(``tests/data/serpro/documented_bodies.json``), 404 for an endpoint Serpro does not have,
401 for an expired or unknown token, and webhook registration."""

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
MEDIA_TYPES = ("image", "document", "video", "audio", "sticker")


def _need(body: Any, field: str, kind: type | tuple[type, ...]) -> str | None:
    if field not in body:
        return f"campo obrigatório ausente: {field}"
    if not isinstance(body[field], kind) or (kind is str and not body[field]):
        return f"campo inválido: {field}"
    return None


def _may(body: Any, field: str, kind: type | tuple[type, ...]) -> str | None:
    return None if field not in body else _need(body, field, kind)


def _first(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


def _rows(body: Any) -> str | None:
    secoes = body.get("secoes")
    rows = [r for s in secoes if isinstance(s, dict) for r in s.get("rows") or []]
    if not all(isinstance(s, dict) and isinstance(s.get("rows"), list) for s in secoes):
        return "campo inválido: secoes[].rows"
    if not all(isinstance(r, dict) for r in rows):
        return "campo inválido: secoes[].rows[]"
    if not 1 <= len(rows) <= 10:
        return "secoes: de 1 a 10 linhas"
    return _first(
        *(_may(s, "titulo", str) for s in secoes),
        *(_first(_need(r, "id", str), _need(r, "titulo", str)) for r in rows),
        *(_may(r, "descricao", str) for r in rows),
    )


def _media(body: Any) -> str | None:
    if body.get("tipoMedia") not in MEDIA_TYPES:
        return "campo inválido: tipoMedia"
    if ("idMedia" in body) == ("linkMedia" in body):
        return "informe idMedia ou linkMedia"
    return _first(
        _may(body, "idMedia", str),
        _may(body, "linkMedia", str),
        _may(body, "caption", str),
        _may(body, "filename", str),
    )


def _template(body: Any) -> str | None:
    problem = _first(
        _need(body, "nomeTemplate", str),
        _need(body, "wabaId", str),
        _need(body, "destinatarios", list),
        _need(body, "body", dict),
        _may(body, "header", dict),
    )
    if problem:
        return problem
    if not body["destinatarios"] or not all(isinstance(d, str) for d in body["destinatarios"]):
        return "campo inválido: destinatarios"
    parametros = body["body"].get("parametros")
    if not isinstance(parametros, list):
        return "campo obrigatório ausente: body.parametros"
    return _first(*(_first(_need(p, "tipo", str), _need(p, "valor", str)) for p in parametros))


# What each send endpoint requires, per the documented bodies (tests/data/serpro/SOURCES.md).
SEND_RULES: dict[str, Callable[[Any], str | None]] = {
    "texto": lambda b: _first(
        _need(b, "destinatario", str), _need(b, "body", str), _may(b, "preview_url", bool)
    ),
    "interativa-botoes": lambda b: _first(
        _need(b, "destinatario", str),
        _need(b, "textoBody", str),
        _need(b, "buttons", list),
        None if 1 <= len(b.get("buttons") or []) <= 3 else "buttons: de 1 a 3",
        *(
            _first(_need(x, "id", str), _need(x, "titulo", str))
            if isinstance(x, dict)
            else "campo inválido: buttons[]"
            for x in b.get("buttons") or []
        ),
    ),
    "interativa-lista": lambda b: (
        _first(
            _need(b, "destinatario", str),
            _need(b, "textoBody", str),
            _need(b, "button", str),
            _need(b, "secoes", list),
        )
        or _rows(b)
    ),
    "interativa-localizacao": lambda b: _first(
        _need(b, "destinatario", str), _need(b, "textoBody", str)
    ),
    "media": lambda b: _need(b, "destinatario", str) or _media(b),
    "template": _template,
}


def send_problem(kind: str, body: Any) -> str | None:
    """Why Serpro would refuse ``body`` on ``mensagem/<kind>``; None when it is acceptable."""
    if not isinstance(body, dict):
        return "o corpo deve ser um objeto JSON"
    return SEND_RULES[kind](body)


@dataclass
class FakeSerpro:
    expires_in: int | None = 600
    token_delay: float = 0.0
    refuse_json_registration: bool = False
    clock: Callable[[], float] = time.monotonic
    tokens: dict[str, float] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refused: list[tuple[str, Any]] = field(default_factory=list)
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
        if kind not in SEND_RULES:
            return web.json_response({"mensagem": "Recurso não encontrado"}, status=404)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"mensagem": "JSON inválido"}, status=400)
        problem = send_problem(kind, body)
        if problem:
            self.refused.append((kind, body))
            return web.json_response({"mensagem": problem}, status=400)
        self.sent.append((kind, body))
        return web.json_response({"idRequisicao": f"REQ{len(self.sent):04d}"}, status=201)

    async def read(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"message": "Unauthorized"}, status=401)
        body = await request.json()
        if not isinstance(body, dict) or _need(body, "message_id", str):
            problem = {"mensagem": "campo obrigatório ausente: message_id"}
            return web.json_response(problem, status=400)
        self.reads.append(body)
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
