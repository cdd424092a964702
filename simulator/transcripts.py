"""What the bot heard in a simulated voice note, read from Rasa's own record of the turn.

The WhatsApp channel puts a voice note's transcript, its confidence and the media id in
``metadata["whatsapp"]`` of the user message (docs/operators/voice.md); Rasa keeps that
metadata on the ``user`` event of the conversation's tracker. ``GET /api/transcripts``
reads the tracker through Rasa's HTTP API (``rasa run --enable-api --auth-token …``, which
``make run`` starts in simulator mode) and answers, per media id, what the bot used, so
the page can show it under the voice note. Nothing in the channel exists for the
simulator's sake: a deployment reads the same metadata from its tracker store.

Without ``SIMULATOR_RASA_URL`` the route answers ``enabled: false`` and the page shows
nothing extra.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from bot.addons.whatsapp.logs import mask_id
from simulator.webhooks import is_bsuid

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transcript:
    """What the bot made of one voice note: the text (None when it heard nothing), its
    confidence, and the problem when it could not hear it (too_long, undecodable, …)."""

    text: str | None
    confidence: float | None
    problem: str | None


def transcripts(tracker: Mapping[str, Any]) -> dict[str, Transcript]:
    """The voice notes of a tracker (Rasa's JSON), by media id; a later turn with the same
    media id (a redelivery) replaces an earlier one."""
    found: dict[str, Transcript] = {}
    events = tracker.get("events")
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, Mapping) or event.get("event") != "user":
            continue
        metadata = event.get("metadata")
        whatsapp = metadata.get("whatsapp") if isinstance(metadata, Mapping) else None
        if not isinstance(whatsapp, Mapping) or "transcript" not in whatsapp:
            continue  # not a voice note (or voice notes are not transcribed)
        media_id = str(whatsapp.get("media_id") or "")
        if not media_id:
            continue
        confidence = whatsapp.get("confidence")
        found[media_id] = Transcript(
            text=whatsapp.get("transcript") or None,
            confidence=float(confidence) if isinstance(confidence, int | float) else None,
            problem=whatsapp.get("voice_problem") or None,
        )
    return found


class TrackerReader:
    """``GET /api/transcripts?number=…``: the voice notes Rasa recorded for a citizen."""

    def __init__(self, rasa_url: str, token: str) -> None:
        self.rasa_url = rasa_url.rstrip("/")
        self.token = token
        self._http: aiohttp.ClientSession | None = None

    async def on_startup(self, app: web.Application) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def on_cleanup(self, app: web.Application) -> None:
        if self._http is not None:
            await self._http.close()

    async def api_transcripts(self, request: web.Request) -> web.Response:
        number = request.query.get("number", "").strip()
        if not is_bsuid(number):  # the page's key of a conversation, as Rasa's sender id
            number = re.sub(r"\D", "", number)
        if not number:
            logger.warning("GET /api/transcripts without a number")
            return web.json_response({"error": "'number' is required"}, status=400)
        if not self.rasa_url:
            return web.json_response({"enabled": False, "transcripts": {}})
        assert self._http is not None
        url = f"{self.rasa_url}/conversations/{quote(number, safe='')}/tracker"
        # Rasa takes its --auth-token as the `token` query parameter; never logged.
        params = {"include_events": "ALL", **({"token": self.token} if self.token else {})}
        try:
            async with self._http.get(url, params=params) as answer:
                if answer.status != 200:
                    logger.warning(
                        "Rasa answered HTTP %s to the tracker of %s (is it run with"
                        " --enable-api and the same token?)",
                        answer.status,
                        mask_id(number),
                    )
                    return web.json_response(
                        {"error": f"Rasa answered HTTP {answer.status}"}, status=502
                    )
                tracker = await answer.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            logger.warning("Could not read the tracker from Rasa: %s", type(exc).__name__)
            return web.json_response({"error": "Rasa is unreachable"}, status=502)
        heard = transcripts(tracker if isinstance(tracker, Mapping) else {})
        return web.json_response(
            {
                "enabled": True,
                "transcripts": {
                    media_id: {"text": t.text, "confidence": t.confidence, "problem": t.problem}
                    for media_id, t in heard.items()
                },
            }
        )


def add_transcripts(app: web.Application, rasa_url: str, token: str) -> None:
    """Serve ``GET /api/transcripts`` on the simulator's app."""
    reader = TrackerReader(rasa_url, token)
    app.on_startup.append(reader.on_startup)  # type: ignore[arg-type]
    app.on_cleanup.append(reader.on_cleanup)  # type: ignore[arg-type]
    app.router.add_get("/api/transcripts", reader.api_transcripts)
