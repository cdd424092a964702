"""The simulator's notification trigger: the page asks the running bot to notify a
simulated number, through the bot's own ``POST /webhooks/whatsapp/notify``.

The page cannot hold the notify token (anyone who opens it would read it), so the
simulator relays: ``POST /api/notify`` with the notify body (``recipient`` and a
``template`` or a domain ``response``) is sent to the bot with ``WPP_NOTIFY_TOKEN`` as its
bearer token, and the bot's answer comes back as is, its status included (409
``outside_service_window`` …). ``GET /api/notify/{id}`` relays the notification's record,
which the bot moves on as the simulator's status webhooks reach it (sent ▸ delivered ▸
read): the ticks the page shows are the bot's, not the simulator's own.
``GET /api/notify/options`` lists what the form offers: the domain's responses, and which
of them are WhatsApp templates (``custom.whatsapp.type: template``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

logger = logging.getLogger(__name__)
DOMAIN = Path(__file__).resolve().parents[1] / "domain.yml"
UNREACHABLE = 502


@dataclass(frozen=True)
class NotifyConfig:
    """Where the bot's notify API is, and its token (empty: the trigger is off)."""

    url: str
    token: str
    domain: Path = DOMAIN


def domain_options(domain: dict[str, Any]) -> dict[str, Any]:
    """The form's choices: every response name, and each template response's template."""
    responses = domain.get("responses") or {}
    templates = []
    for name, variations in sorted(responses.items()):
        for variation in variations or []:
            custom = variation.get("custom") if isinstance(variation, dict) else None
            body = custom.get("whatsapp") if isinstance(custom, dict) else None
            if isinstance(body, dict) and body.get("type") == "template":
                template = body.get("template") or {}
                language = template.get("language") or {}
                templates.append(
                    {
                        "response": name,
                        "name": str(template.get("name", "")),
                        "language": str(language.get("code", ""))
                        if isinstance(language, dict)
                        else str(language),
                    }
                )
                break
    return {"responses": sorted(responses), "templates": templates}


class NotifyRelay:
    """The three routes, with their own HTTP client."""

    def __init__(self, config: NotifyConfig) -> None:
        self.config = config
        self._http: aiohttp.ClientSession | None = None
        self._options: dict[str, Any] | None = None

    async def on_startup(self, app: web.Application) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def on_cleanup(self, app: web.Application) -> None:
        if self._http is not None:
            await self._http.close()

    def _disabled(self) -> web.Response | None:
        if self.config.token:
            return None
        detail = "set WPP_NOTIFY_TOKEN for the bot and the simulator (make run does)"
        return web.json_response({"error": "notify_disabled", "detail": detail}, status=503)

    async def _relay(self, method: str, url: str, body: Any = None) -> web.Response:
        assert self._http is not None
        headers = {"Authorization": f"Bearer {self.config.token}"}
        try:
            async with self._http.request(method, url, json=body, headers=headers) as answer:
                text = await answer.text()
                status = answer.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            logger.warning("The bot's notify API is unreachable at %s: %s", url, exc)
            detail = f"the bot's notify API is unreachable at {url}"
            return web.json_response(
                {"error": "bot_unreachable", "detail": detail}, status=UNREACHABLE
            )
        try:
            answered = json.loads(text)
        except json.JSONDecodeError:
            answered = {"error": "not_json", "detail": text[:200]}
        return web.json_response(answered, status=status)

    async def options(self, request: web.Request) -> web.Response:
        if self._options is None:
            text = await asyncio.to_thread(self.config.domain.read_text, encoding="utf-8")
            self._options = domain_options(yaml.safe_load(text) or {})
        return web.json_response({"enabled": bool(self.config.token), **self._options})

    async def send(self, request: web.Request) -> web.Response:
        refused = self._disabled()
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            logger.warning("Notification not relayed: the body is not a JSON object")
            return web.json_response(
                {"error": "invalid_json", "detail": "the body must be a JSON object"}, status=400
            )
        # The bot validates the rest (recipient, template or response) and says what is wrong.
        return await self._relay("POST", self.config.url, body)

    async def status(self, request: web.Request) -> web.Response:
        refused = self._disabled()
        if refused is not None:
            return refused
        id_ = request.match_info["id"]
        return await self._relay("GET", f"{self.config.url}/{id_}")


def add_notify_routes(app: web.Application, config: NotifyConfig) -> None:
    """The trigger's routes on the simulator's app."""
    relay = NotifyRelay(config)
    app.on_startup.append(relay.on_startup)  # type: ignore[arg-type]
    app.on_cleanup.append(relay.on_cleanup)  # type: ignore[arg-type]
    app.router.add_get("/api/notify/options", relay.options)
    app.router.add_post("/api/notify", relay.send)
    app.router.add_get("/api/notify/{id:[A-Za-z0-9_-]+}", relay.status)
