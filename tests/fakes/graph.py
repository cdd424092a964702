"""A local fake of the Graph API's WhatsApp endpoints, scriptable with failures."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.stack import free_port

SUCCESS_TEMPLATE = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "", "wa_id": ""}],
    "messages": [{"id": ""}],
}


BSUID = re.compile(r"^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$")


def graph_error(message: str, code: int = 100) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": "FAKE",
        }
    }


def addressing_error(body: dict[str, Any]) -> dict[str, Any] | None:
    """What Meta answers to a message body that names no recipient, or a BSUID as ``to``
    (LIMITS.md §8.1): ``to`` takes a phone number, ``recipient`` a BSUID."""
    to, recipient = body.get("to"), body.get("recipient")
    if not to and not recipient:
        return graph_error("(#100) The parameter to is required.")
    if to and BSUID.match(str(to)):
        return graph_error("(#100) Invalid parameter: a business-scoped user ID goes in recipient")
    if recipient and not to and not BSUID.match(str(recipient)):
        return graph_error("(#100) Invalid parameter: recipient is not a business-scoped user ID")
    return None


@dataclass
class Scripted:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeGraph:
    """Records every request; answers from ``script`` first, then like Meta on success."""

    token: str = "test-access-token"
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: deque[Scripted] = field(default_factory=deque)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    media_requests: list[str] = field(default_factory=list)  # media ids asked for, in order
    url: str = ""
    down_until: float = 0.0  # time.monotonic() before which every send answers 503
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Message bodies (not read receipts) the fake accepted, in arrival order."""
        return [
            r["body"]
            for r in self.requests
            if r["accepted"] and ("to" in (r["body"] or {}) or "recipient" in (r["body"] or {}))
        ]

    def fail(
        self, status: int, body: Any, times: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        for _ in range(times):
            self.script.append(Scripted(status, body, headers or {}))

    async def messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        record = {
            "path": request.path,
            "body": body,
            "auth": request.headers.get("Authorization"),
            "accepted": False,
        }
        self.requests.append(record)
        if time.monotonic() < self.down_until:
            return web.json_response(
                {"error": {"message": "Service temporarily unavailable", "code": 2}}, status=503
            )
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(
                {
                    "error": {
                        "message": "Invalid OAuth access token.",
                        "type": "OAuthException",
                        "code": 190,
                        "fbtrace_id": "FAKE",
                    }
                },
                status=401,
            )
        if self.script:
            step = self.script.popleft()
            return web.json_response(step.body, status=step.status, headers=step.headers)
        if body.get("status") != "read":
            refused = addressing_error(body)
            if refused is not None:
                return web.json_response(refused, status=400)
        record["accepted"] = True
        if body.get("status") == "read":
            return web.json_response({"success": True})
        answer = json.loads(json.dumps(SUCCESS_TEMPLATE))
        if "to" in body:  # "to" wins when both are given (M-bsuid changelog 2026-02-18)
            answer["contacts"][0] = {
                "input": body["to"],
                "wa_id": str(body["to"]).lstrip("+"),
            }
        else:  # a BSUID send: Meta answers with no wa_id
            answer["contacts"][0] = {"input": body["recipient"], "user_id": body["recipient"]}
        answer["messages"][0]["id"] = f"wamid.OUT{next(self._ids):04d}"
        return web.json_response(answer)

    async def media_info(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        self.media_requests.append(media_id)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(graph_error("Invalid OAuth access token.", 190), status=401)
        if media_id not in self.media:
            return web.json_response(
                {"error": {"message": "Unsupported get request", "code": 100}}, status=400
            )
        content, mime = self.media[media_id]
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": f"{self.url}/download/{media_id}",
                "mime_type": mime,
                "sha256": "x",
                "file_size": len(content),
                "id": media_id,
            }
        )

    async def download(self, request: web.Request) -> web.Response:
        if time.monotonic() < self.down_until:
            return web.json_response(
                {"error": {"message": "Service temporarily unavailable", "code": 2}}, status=503
            )
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401)
        content, mime = self.media[request.match_info["media_id"]]
        return web.Response(body=content, content_type=mime)


@asynccontextmanager
async def running_graph(fake: FakeGraph | None = None) -> AsyncIterator[FakeGraph]:
    fake = fake or FakeGraph()
    app = web.Application()
    app.router.add_post("/{version}/{phone_number_id}/messages", fake.messages)
    app.router.add_get("/download/{media_id}", fake.download)
    app.router.add_get("/{version}/{media_id}", fake.media_info)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()
