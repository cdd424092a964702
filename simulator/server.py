"""The simulator's HTTP server: a fake Graph API, the chat page and its JSON API."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.addons.whatsapp.inbound.signature import SIGNATURE_HEADER, sign, token_matches
from bot.addons.whatsapp.logs import mask_id
from bot.addons.whatsapp.masking import mask_numbers
from simulator.chatwoot import FakeChatwoot
from simulator.notify import NotifyConfig, add_notify_routes
from simulator.recording import add_recording
from simulator.transcripts import add_transcripts
from simulator.validation import validate_message
from simulator.webhooks import (
    is_bsuid,
    message_webhook,
    new_wamid,
    status_webhook,
    user_message,
)

logger = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
VERSION_RE = re.compile(r"^v\d+\.\d+$")


@dataclass
class SimulatorConfig:
    """Where the channel listens and the secrets shared with it."""

    webhook_url: str
    app_secret: str
    access_token: str
    phone_number_id: str = "100000000000002"
    public_url: str = "http://localhost:5100"
    status_delay: float = 0.3
    rasa_url: str = ""  # Rasa's HTTP API, to show what the bot heard in voice notes
    rasa_token: str = ""
    notify: NotifyConfig | None = None  # the bot's notify API, for the page's trigger


@dataclass
class Item:
    """One bubble of a conversation."""

    id: str
    direction: str  # "in" (the user's) or "out" (the bot's)
    body: dict[str, Any]
    status: str = "sent"
    errors: list[str] = field(default_factory=list)
    time: float = field(default_factory=time.time)


TYPING_SECONDS = 25.0


def citizen(value: str) -> str:
    """A conversation's key on the page: a BSUID as typed, else the phone's digits."""
    value = value.strip()
    return value if is_bsuid(value) else re.sub(r"\D", "", value)


def graph_error(status: int, code: int, message: str, subcode: int | None = None) -> web.Response:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "SIM" + uuid.uuid4().hex[:8],
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return web.json_response({"error": error}, status=status)


class Simulator:
    """State and handlers of one simulator process (in memory, per phone number)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.conversations: dict[str, list[Item]] = {}
        self.names: dict[str, str] = {}
        self.typing: dict[str, float] = {}
        self.clock = time.time
        self.media: dict[str, tuple[bytes, str]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle -----------------------------------------------------------------
    async def on_startup(self, app: web.Application) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))

    async def on_cleanup(self, app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._http is not None:
            await self._http.close()

    def _later(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def conversation(self, number: str) -> list[Item]:
        return self.conversations.setdefault(number.lstrip("+"), [])

    def _typing_after_read(self, number: str, items: list[Item], item: Item) -> None:
        """The typing indicator shows while a reply is due: not when the bot already
        answered this message (the read receipt can arrive after the reply) and for at
        most 25 s, as on a phone (M-typing)."""
        if any(later.direction == "out" for later in items[items.index(item) + 1 :]):
            return
        self.typing[number] = self.clock() + TYPING_SECONDS

    def typing_on(self, number: str) -> bool:
        return self.typing.get(number, 0) > self.clock()

    def find(self, wamid: str) -> Item | None:
        for items in self.conversations.values():
            for item in items:
                if item.id == wamid:
                    return item
        return None

    async def post_webhook(self, body: dict[str, Any]) -> int:
        """Sign and POST a webhook to the channel, as Meta does; returns the HTTP status."""
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.config.app_secret, raw),
        }
        assert self._http is not None
        try:
            async with self._http.post(
                self.config.webhook_url, data=raw, headers=headers
            ) as response:
                return response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            logger.warning("Channel unreachable at %s: %s", self.config.webhook_url, exc)
            return 0

    # --- fake Graph API --------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and token_matches(self.config.access_token, header[7:])

    async def graph_messages(self, request: web.Request) -> web.Response:
        if not VERSION_RE.match(request.match_info["version"]):
            return graph_error(400, 2500, "Unknown path components")
        if not self._authorized(request):
            return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if request.match_info["phone_number_id"] != self.config.phone_number_id:
            return graph_error(
                400,
                100,
                "Unsupported post request. Object with ID does not exist, cannot be loaded due "
                "to missing permissions, or does not support this operation",
                33,
            )
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return graph_error(400, 100, "Invalid parameter: the body is not JSON")
        violations = validate_message(body)
        if isinstance(body, dict) and body.get("status") == "read":
            if violations:
                return web.json_response(violations[0].error_body("SIM"), status=400)
            item = self.find(str(body["message_id"]))
            if item is None:
                return web.json_response(
                    {
                        "error": {
                            "message": "(#131009) Parameter value is not valid",
                            "type": "OAuthException",
                            "code": 131009,
                            "error_data": {
                                "messaging_product": "whatsapp",
                                "details": "Invalid message_id",
                            },
                            "fbtrace_id": "SIM",
                        }
                    },
                    status=400,
                )
            for number, items in self.conversations.items():
                if item in items:
                    for earlier in items:  # marking read marks earlier messages read too
                        if earlier.direction == "in":
                            earlier.status = "read"
                    if "typing_indicator" in body:
                        self._typing_after_read(number, items, item)
            return web.json_response({"success": True})
        to = ""
        if isinstance(body, dict):  # "to" wins when both are given (M-bsuid)
            to = str(body.get("to") or body.get("recipient") or "").lstrip("+")
        wamid = new_wamid()
        item = Item(wamid, "out", body if isinstance(body, dict) else {"raw": body})
        if violations:
            item.status = "failed"
            item.errors = [f"({v.code}) {v.rule}" for v in violations]
            self.conversation(to or "unknown").append(item)
            # The reasons quote what the body held (a BSUID in ``to``): masked like the rest.
            reasons = mask_numbers("; ".join(item.errors))
            logger.warning("Rejected a message to %s: %s", mask_id(to), reasons)
            return web.json_response(
                violations[0].error_body("SIM" + uuid.uuid4().hex[:8]), status=400
            )
        self.conversation(to).append(item)
        self.typing.pop(to, None)
        self._later(self._statuses(item, to))
        contact = (
            {"input": body["to"], "wa_id": to}
            if body.get("to")
            else {"input": body["recipient"], "user_id": to}  # a BSUID send: no wa_id
        )
        return web.json_response(
            {"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]}
        )

    async def _statuses(self, item: Item, to: str) -> None:
        for status in ("sent", "delivered", "read"):
            await asyncio.sleep(self.config.status_delay)
            item.status = status
            await self.post_webhook(
                status_webhook(self.config.phone_number_id, item.id, to, status)
            )

    async def graph_media(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return graph_error(401, 190, "Invalid OAuth access token")
        media_id = request.match_info["media_id"]
        if media_id not in self.media:
            return graph_error(400, 100, "Unsupported get request. Object does not exist")
        content, mime = self.media[media_id]
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": f"{self.config.public_url}/media/{media_id}",
                "mime_type": mime,
                "sha256": "SIMULATED",
                "file_size": len(content),
                "id": media_id,
            }
        )

    async def media_bytes(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        if media_id not in self.media:
            raise web.HTTPNotFound()
        content, mime = self.media[media_id]
        return web.Response(body=content, content_type=mime)

    # --- the page's JSON API -----------------------------------------------------------
    async def api_send(self, request: web.Request) -> web.Response:
        try:
            action = await request.json()
            number = citizen(str(action.get("from", "")))
            if len(number) < 8 and not is_bsuid(number):
                raise ValueError(
                    "'from' must be a phone number with country code, or a business-scoped "
                    "user id (BR.…) for a citizen with a username and no phone"
                )
            name = str(action.get("name") or "Cidadão")
            username = str(action.get("username") or "")
            message = user_message(action)
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.names[number] = name
        wamid, webhook = message_webhook(
            self.config.phone_number_id, number, name, message, username=username
        )
        item = Item(wamid, "in", message)
        self.conversation(number).append(item)
        status = await self.post_webhook(webhook)
        if status == 200:
            if item.status == "sent":
                item.status = "delivered"
        else:
            item.status = "failed"
            item.errors = [
                f"the channel answered HTTP {status}" if status else "the channel is unreachable"
            ]
        return web.json_response({"wamid": wamid, "webhook_status": status, "webhook": webhook})

    async def api_upload(self, request: web.Request) -> web.Response:
        content = await request.read()
        if not content:
            return web.json_response({"error": "empty upload"}, status=400)
        media_id = self.store(content, request.content_type or "image/png")
        return web.json_response({"id": media_id, "url": f"/media/{media_id}"})

    def store(self, content: bytes, mime: str) -> str:
        """Keep media the fake Graph API serves (an upload, a recording); its media id."""
        media_id = str(100000000000500 + len(self.media))
        self.media[media_id] = (content, mime)
        return media_id

    async def api_messages(self, request: web.Request) -> web.Response:
        number = citizen(request.query.get("number", ""))
        items = [asdict(i) for i in self.conversation(number)] if number else []
        typing = self.typing_on(number)
        return web.json_response({"number": number, "typing": typing, "messages": items})

    async def api_numbers(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"numbers": sorted(n for n, items in self.conversations.items() if items)}
        )

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "webhook_url": self.config.webhook_url})


SIMULATOR_KEY = web.AppKey("simulator", Simulator)


def create_app(config: SimulatorConfig, chatwoot: FakeChatwoot | None = None) -> web.Application:
    sim = Simulator(config)
    app = web.Application(client_max_size=6 * 1024 * 1024)
    app[SIMULATOR_KEY] = sim
    app.on_startup.append(sim.on_startup)  # type: ignore[arg-type]
    app.on_cleanup.append(sim.on_cleanup)  # type: ignore[arg-type]
    sample = STATIC / "sample.png"
    sim.media["100000000000499"] = (sample.read_bytes(), "image/png")
    app.router.add_get("/", sim.index)
    app.router.add_get("/health", sim.health)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/media/{media_id}", sim.media_bytes)
    app.router.add_post("/api/send", sim.api_send)
    app.router.add_post("/api/upload", sim.api_upload)
    add_recording(app, sim.store)
    app.router.add_get("/api/messages", sim.api_messages)
    app.router.add_get("/api/numbers", sim.api_numbers)
    add_transcripts(app, config.rasa_url, config.rasa_token)
    add_chatwoot(app, chatwoot or FakeChatwoot(token=""), config.public_url)
    add_notify_routes(app, config.notify or NotifyConfig("", ""))
    app.router.add_post("/{version}/{phone_number_id}/messages", sim.graph_messages)
    app.router.add_get("/{version}/{media_id}", sim.graph_media)
    return app


def add_chatwoot(app: web.Application, chatwoot: FakeChatwoot, public_url: str) -> None:
    """The fake Chatwoot of the agent pane on the simulator's port (without a token it
    refuses every API call and the pane says handoff is off)."""
    chatwoot.url = public_url

    async def start(_: web.Application) -> None:
        await chatwoot.start()

    async def stop(_: web.Application) -> None:
        await chatwoot.stop()

    app.on_startup.append(start)  # type: ignore[arg-type]
    app.on_cleanup.append(stop)  # type: ignore[arg-type]
    chatwoot.add_routes(app)
