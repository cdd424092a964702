"""A voice note recorded in the simulator page reaches the channel as WhatsApp sends one.

Chromium's ``MediaRecorder`` writes WebM/Opus at 48 kHz, here in stereo; ``POST /api/record``
must store OGG/Opus mono, the only voice-note format WhatsApp delivers. The recordings are
made from a committed clip with PyAV, as Chromium would write them;
tests/e2e/test_browser_voice.py records one from Chromium's fake microphone.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from aiohttp import web

from bot.addons.whatsapp.voice.audio import Audio, decode
from simulator.recording import Refused, to_voice_note
from simulator.server import SimulatorConfig, create_app
from tests.support.stack import free_port

VOICE = Path(__file__).resolve().parent / "data" / "voice"
TOKEN = "sim-access-token"


def recorded_like_chromium(clip: bytes) -> bytes:
    """``clip`` re-encoded as Chromium's MediaRecorder writes it: WebM, Opus, 48 kHz,
    stereo (what a laptop's microphone often gives)."""
    out = io.BytesIO()
    with (
        av.open(io.BytesIO(clip), mode="r") as source,
        av.open(out, mode="w", format="webm") as target,
    ):
        stream = target.add_stream("libopus", rate=48_000, layout="stereo")
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=48_000)
        for frame in source.decode(source.streams.audio[0]):
            for part in resampler.resample(frame):
                target.mux(stream.encode(part))
        for part in resampler.resample(None):
            target.mux(stream.encode(part))
        target.mux(stream.encode(None))
    return out.getvalue()


def seconds(data: bytes) -> float:
    heard = decode(data, max_seconds=60)
    assert isinstance(heard, Audio), heard
    return heard.seconds


@dataclass
class Running:
    url: str
    webhooks: list[dict[str, Any]]
    http: aiohttp.ClientSession


@pytest.fixture
async def sim() -> AsyncIterator[Running]:
    webhooks: list[dict[str, Any]] = []

    async def channel(request: web.Request) -> web.Response:
        webhooks.append(json.loads(await request.read()))
        return web.json_response({"status": "ok"})

    channel_app = web.Application()
    channel_app.router.add_post("/webhook", channel)
    channel_port, sim_port = free_port(), free_port()
    config = SimulatorConfig(
        webhook_url=f"http://127.0.0.1:{channel_port}/webhook",
        app_secret="sim-app-secret",
        access_token=TOKEN,
        public_url=f"http://127.0.0.1:{sim_port}",
        status_delay=0.01,
    )
    runners = []
    for app, port in ((channel_app, channel_port), (create_app(config), sim_port)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    async with aiohttp.ClientSession() as http:
        yield Running(f"http://127.0.0.1:{sim_port}", webhooks, http)
    for runner in reversed(runners):
        await runner.cleanup()


async def test_a_webm_recording_reaches_the_channel_as_an_ogg_opus_mono_voice_note(
    sim: Running,
) -> None:
    clip = (VOICE / "bom_dia.ogg").read_bytes()
    answer = await sim.http.post(
        f"{sim.url}/api/record",
        data=recorded_like_chromium(clip),
        headers={"Content-Type": "audio/webm;codecs=opus"},
    )
    stored = await answer.json()
    media_id = stored["id"]
    assert (answer.status, stored) == (
        200,
        {
            "id": media_id,
            "url": f"/media/{media_id}",
            "mime_type": "audio/ogg; codecs=opus",
            "seconds": pytest.approx(seconds(clip), abs=0.1),
        },
    )
    sent = await sim.http.post(
        f"{sim.url}/api/send",
        json={
            "from": "5561999990001",
            "kind": "audio",
            "media_id": media_id,
            "mime_type": stored["mime_type"],
            "voice": True,
        },
    )
    assert sent.status == 200
    (webhook,) = sim.webhooks
    message = webhook["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["audio"] == {
        "mime_type": "audio/ogg; codecs=opus",
        "sha256": "SIMULATED",
        "id": media_id,
        "voice": True,
    }
    # The channel downloads it as from Meta: the Graph API's media URL, then the bytes.
    auth = {"Authorization": f"Bearer {TOKEN}"}
    info = await (await sim.http.get(f"{sim.url}/v26.0/{media_id}", headers=auth)).json()
    assert info["mime_type"] == "audio/ogg"
    note = await (await sim.http.get(info["url"], headers=auth)).read()
    with av.open(io.BytesIO(note)) as container:
        (stream,) = container.streams.audio
        assert (
            container.format.name,
            stream.codec_context.name,
            stream.codec_context.channels,
        ) == (
            "ogg",
            "opus",
            1,
        )
    assert seconds(note) == pytest.approx(seconds(clip), abs=0.1)


async def test_a_recording_of_a_type_no_browser_records_is_refused_with_the_reason(
    sim: Running, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="simulator.recording"):
        answer = await sim.http.post(
            f"{sim.url}/api/record", data=b"hello", headers={"Content-Type": "text/plain"}
        )
    assert (answer.status, await answer.json()) == (
        415,
        {
            "error": "a recording must be one of audio/mp4, audio/ogg, audio/webm, video/webm,"
            " not 'text/plain'"
        },
    )
    assert "Refused a recording of type text/plain" in caplog.text


async def test_a_recording_that_is_not_audio_is_refused_and_nothing_is_stored(
    sim: Running, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="simulator.recording"):
        answer = await sim.http.post(
            f"{sim.url}/api/record",
            data=(VOICE / "broken.ogg").read_bytes(),
            headers={"Content-Type": "audio/ogg"},
        )
    refusal = await answer.json()
    assert answer.status == 400
    assert refusal["error"].startswith("the recording could not be decoded (")
    assert f"Refused a recording (audio/ogg): {refusal['error']}" in caplog.text
    auth = {"Authorization": f"Bearer {TOKEN}"}
    nothing = await sim.http.get(f"{sim.url}/v26.0/100000000000501", headers=auth)  # the next id
    assert nothing.status == 400


def test_a_recording_longer_than_the_limit_is_refused() -> None:
    long_tone = (VOICE / "long_tone.ogg").read_bytes()  # 4 s
    assert to_voice_note(long_tone, max_seconds=2) == Refused("the recording is longer than 2 s")
    assert not isinstance(to_voice_note(long_tone, max_seconds=5), Refused)
