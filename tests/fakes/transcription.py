"""A local fake of an OpenAI-compatible transcription endpoint
(``POST /v1/audio/transcriptions``, the interface self-hosted Whisper servers speak).

It refuses what the real one refuses: a missing or wrong bearer token (401), a request
that is not multipart or lacks ``file`` or ``model`` (400), an unknown
``response_format`` (400). Transcripts are scripted per file content (sha256).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.stack import free_port

FORMATS = {"json", "text", "srt", "verbose_json", "vtt"}


def openai_error(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


@dataclass
class Said:
    """What the fake answers for one file: text, Whisper's avg_logprob, delay in seconds."""

    text: str
    avg_logprob: float = -0.1
    delay: float = 0.0


@dataclass
class FakeTranscriber:
    token: str = "test-voice-token"
    transcripts: dict[str, Said] = field(default_factory=dict)  # sha256 of file -> answer
    requests: list[dict[str, Any]] = field(default_factory=list)
    refused_tokens: int = 0
    url: str = ""

    def say(self, content: bytes, said: Said) -> None:
        self.transcripts[hashlib.sha256(content).hexdigest()] = said

    async def transcriptions(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.refused_tokens += 1
            return web.json_response(
                openai_error("Incorrect API key provided.", "invalid_api_key"), status=401
            )
        if not request.content_type.startswith("multipart/form-data"):
            return web.json_response(openai_error("Expected multipart/form-data"), status=400)
        fields: dict[str, str] = {}
        file: bytes | None = None
        file_type = ""
        reader = await request.multipart()
        async for part in reader:
            if part.name == "file":
                file = await part.read()
                file_type = part.headers.get("Content-Type", "")
            elif part.name:
                fields[part.name] = await part.text()
        self.requests.append({"fields": fields, "file": file, "file_type": file_type})
        if file is None:
            return web.json_response(openai_error("Missing required parameter: 'file'"), status=400)
        if not fields.get("model"):
            return web.json_response(
                openai_error("Missing required parameter: 'model'"), status=400
            )
        response_format = fields.get("response_format", "json")
        if response_format not in FORMATS:
            return web.json_response(
                openai_error(f"Invalid response_format: {response_format!r}"), status=400
            )
        said = self.transcripts.get(hashlib.sha256(file).hexdigest(), Said(""))
        if said.delay:
            await asyncio.sleep(said.delay)
        if response_format == "text":
            return web.Response(text=said.text)
        body: dict[str, Any] = {"text": said.text}
        if response_format == "verbose_json":
            body.update(
                {
                    "task": "transcribe",
                    "language": fields.get("language", "portuguese"),
                    "duration": 1.0,
                    "segments": [
                        {
                            "id": 0,
                            "seek": 0,
                            "start": 0.0,
                            "end": 1.0,
                            "text": said.text,
                            "temperature": 0.0,
                            "avg_logprob": said.avg_logprob,
                            "compression_ratio": 1.0,
                            "no_speech_prob": 0.01,
                        }
                    ]
                    if said.text
                    else [],
                }
            )
        return web.json_response(body)


@asynccontextmanager
async def running_transcriber(
    fake: FakeTranscriber | None = None,
) -> AsyncIterator[FakeTranscriber]:
    fake = fake or FakeTranscriber()
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_post("/v1/audio/transcriptions", fake.transcriptions)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()
