"""Voice notes: download from the Graph API's media endpoint, decode, transcribe (an
OpenAI-compatible endpoint here, faster-whisper in test_voice_local.py), and what Rasa
receives — all over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.addons.whatsapp.config import InboundIntents, WhatsAppSettings
from bot.addons.whatsapp.errors import ConfigurationError
from bot.addons.whatsapp.metrics import Metrics
from bot.addons.whatsapp.providers.cloud.client import CloudProvider
from bot.addons.whatsapp.voice.audio import Audio, NotHeard, decode
from bot.addons.whatsapp.voice.backends import Heard, check_model, confidence
from bot.addons.whatsapp.voice.service import VoiceNotes, rasa_text, voice_metadata
from tests.channel_harness import FakeAgent, RecordingProvider, Served, serve_channel, settings
from tests.fakes.graph import FakeGraph, running_graph
from tests.fakes.transcription import FakeTranscriber, Said, running_transcriber
from tests.whatsapp_fixtures import fixture

VOICE = Path(__file__).resolve().parent / "data" / "voice"
CLIP = {
    name: (VOICE / f"{name}.ogg").read_bytes()
    for name in ("bom_dia", "obrigado", "iptu_mumbled", "long_tone", "broken")
}
OGG = "audio/ogg; codecs=opus"
TOKEN = "test-voice-token"


# --- decoding (PyAV) -------------------------------------------------------------------


def test_a_whatsapp_voice_note_decodes_to_16_khz_mono_samples() -> None:
    audio = decode(CLIP["bom_dia"], max_seconds=60)
    assert isinstance(audio, Audio)
    assert audio.samples.dtype.name == "float32" and audio.samples.ndim == 1
    assert 0.5 < audio.seconds < 2.0
    assert audio.samples.size == round(audio.seconds * 16_000)
    assert 0.01 < float(abs(audio.samples).max()) <= 1.0  # speech, not silence


def test_a_note_over_the_limit_is_refused_as_too_long() -> None:
    assert decode(CLIP["long_tone"], max_seconds=3) == NotHeard("too_long")
    assert isinstance(decode(CLIP["long_tone"], max_seconds=5), Audio)


@pytest.mark.parametrize("data", [CLIP["broken"], b"", b"not audio at all" * 100])
def test_a_broken_file_is_undecodable(data: bytes) -> None:
    assert decode(data, max_seconds=60) == NotHeard("undecodable")


# --- what Rasa receives --------------------------------------------------------------


def test_confidence_is_exp_of_the_length_weighted_mean_log_probability() -> None:
    assert confidence([]) is None
    assert confidence([("oi", 0.0)]) == 1.0
    # "bom dia" (7 chars) at -0.1 and "x" (1 char) at -2.0: mean -0.3375
    assert confidence([("bom dia", -0.1), ("x", -2.0)]) == pytest.approx(0.7136, abs=1e-4)


def test_a_sure_transcript_reaches_rasa_as_typed_text() -> None:
    heard = Heard("Quero pagar o IPTU", 0.9)
    assert rasa_text(heard, 0.5, InboundIntents()) == "Quero pagar o IPTU"
    assert rasa_text(Heard("sem confiança", None), 0.5, InboundIntents()) == "sem confiança"


def test_an_unsure_transcript_asks_the_bot_to_confirm_it() -> None:
    heard = Heard('quero "pagar" o iptu', 0.3)
    assert rasa_text(heard, 0.5, InboundIntents()) == (
        '/voice_confirm{"voice_transcript":"quero \\"pagar\\" o iptu"}'
    )


def test_a_transcript_cannot_pass_for_an_intent_payload() -> None:
    assert rasa_text(Heard("/human_contact", 0.9), 0.5, InboundIntents()) == "human_contact"


def test_a_note_without_transcript_tells_the_bot_why() -> None:
    assert rasa_text(NotHeard("timeout"), 0.5, InboundIntents()) == (
        '/voice_failed{"voice_problem":"timeout"}'
    )
    assert voice_metadata(NotHeard("timeout"), "m1") == {
        "transcript": None,
        "confidence": None,
        "media_id": "m1",
        "voice_problem": "timeout",
    }


# --- configuration -------------------------------------------------------------------


def _env(**values: str) -> dict[str, str]:
    return {
        "WPP_AUTHORIZATION_TOKEN": "t",
        "WPP_VERIFY_TOKEN": "v",
        "WPP_PHONE_NUMBER_IDENTIFIER": "1",
        "WPP_APP_SECRET": "s",
        **values,
    }


def test_no_voice_backend_is_configured_by_default() -> None:
    assert WhatsAppSettings.from_credentials({}, _env()).voice_backend == "none"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WPP_VOICE_BACKEND": "local"}, "WPP_VOICE_MODEL_PATH, WPP_VOICE_MODEL_SHA256"),
        ({"WPP_VOICE_BACKEND": "api"}, "WPP_VOICE_API_URL"),
    ],
)
def test_a_voice_backend_without_its_settings_stops_the_start_naming_the_variables(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        VoiceNotes.from_settings(WhatsAppSettings.from_credentials({}, _env(**env)), Metrics())


def test_an_unknown_voice_backend_is_named() -> None:
    with pytest.raises(
        ConfigurationError, match="WPP_VOICE_BACKEND must be 'none' or 'local' or 'api'"
    ):
        WhatsAppSettings.from_credentials({}, _env(WPP_VOICE_BACKEND="cloud"))


def test_a_local_model_that_is_not_the_configured_one_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no model\.bin"):
        check_model(str(tmp_path), "0" * 64)
    (tmp_path / "model.bin").write_bytes(b"weights")
    with pytest.raises(ConfigurationError, match="WPP_VOICE_MODEL_SHA256 does not match"):
        check_model(str(tmp_path), "0" * 64)
    digest = hashlib.sha256(b"weights").hexdigest()
    assert check_model(str(tmp_path), digest.upper()) == tmp_path


# --- the channel, over HTTP ------------------------------------------------------------


class GraphMedia(RecordingProvider):
    """Records sends, but downloads media from the fake Graph API with the real client."""

    def __init__(self, cloud: CloudProvider) -> None:
        super().__init__()
        self.cloud = cloud

    async def start(self) -> None:
        await self.cloud.start()

    async def close(self) -> None:
        await self.cloud.close()

    async def download_media(self, media_id: str) -> tuple[bytes, str]:
        return await self.cloud.download_media(media_id)


def voice_webhook(wamid: str, media_id: str, sender: str = "15550002222") -> dict[str, Any]:
    payload = copy.deepcopy(fixture("inbound_audio_voice"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = sender
    message = value["messages"][0]
    message.update({"id": wamid, "from": sender})
    message["audio"]["id"] = media_id
    return payload


def text_webhook(wamid: str, body: str, sender: str) -> dict[str, Any]:
    payload = copy.deepcopy(fixture("inbound_text"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"][0].update({"id": wamid, "from": sender, "text": {"body": body}})
    value["contacts"][0]["wa_id"] = sender
    return payload


@asynccontextmanager
async def voice_channel(
    agent: FakeAgent | None = None, **overrides: Any
) -> AsyncIterator[tuple[Served, FakeGraph, FakeTranscriber]]:
    """The channel with the ``api`` backend, media on a fake Graph API, transcripts from a
    fake OpenAI-compatible endpoint."""
    async with running_graph() as graph, running_transcriber() as transcriber:
        for name, content in CLIP.items():
            graph.media[name] = (content, OGG)
        values: dict[str, Any] = {
            "voice_backend": "api",
            "voice_api_url": transcriber.url,
            "voice_api_token": TOKEN,
            "voice_timeout": 5.0,
            "voice_confirm_below": 0.5,
            "voice_max_seconds": 3.0,
            **overrides,
        }
        cloud = CloudProvider.from_settings(settings(api_base_url=graph.url, api_version="v26.0"))
        async with serve_channel(agent, transport=GraphMedia(cloud), **values) as served:
            yield served, graph, transcriber


async def test_a_voice_note_reaches_the_bot_as_its_transcript() -> None:
    async with voice_channel() as (served, graph, transcriber):
        transcriber.say(CLIP["bom_dia"], Said("Bom dia!", avg_logprob=-0.05))
        assert (await served.post(voice_webhook("wamid.V1", "bom_dia"))).status == 200
        await served.settle()
    (message,) = served.agent.messages
    assert message.text == "Bom dia!"
    whatsapp = message.metadata["whatsapp"]
    assert {k: whatsapp[k] for k in ("transcript", "confidence", "media_id", "voice_problem")} == {
        "transcript": "Bom dia!",
        "confidence": 0.9512,
        "media_id": "bom_dia",
        "voice_problem": None,
    }
    assert whatsapp["media"]["voice"] is True
    # The note came from the Graph API's media endpoint, the original bytes went on.
    assert graph.media_requests == ["bom_dia"]
    (request,) = transcriber.requests
    assert request["file"] == CLIP["bom_dia"]
    assert request["file_type"] == OGG
    assert request["fields"] == {
        "model": "whisper-1",
        "language": "pt",
        "response_format": "verbose_json",
        "temperature": "0",
    }
    assert 'whatsapp_voice_notes_total{outcome="transcribed"} 1' in served.channel.metrics.render()


async def test_an_unsure_transcript_goes_to_the_bot_for_confirmation() -> None:
    async with voice_channel() as (served, _graph, transcriber):
        transcriber.say(CLIP["iptu_mumbled"], Said("é do pânato", avg_logprob=-1.27))
        await served.post(voice_webhook("wamid.V2", "iptu_mumbled"))
        await served.settle()
    (message,) = served.agent.messages
    assert message.text == '/voice_confirm{"voice_transcript":"é do pânato"}'
    assert message.metadata["whatsapp"]["confidence"] == 0.2808
    assert 'whatsapp_voice_notes_total{outcome="confirm"} 1' in served.channel.metrics.render()


@pytest.mark.parametrize(
    ("media_id", "problem"),
    [("long_tone", "too_long"), ("broken", "undecodable"), ("missing", "download")],
)
async def test_a_note_that_cannot_be_transcribed_makes_the_bot_ask_to_type(
    media_id: str, problem: str
) -> None:
    async with voice_channel() as (served, _graph, transcriber):
        await served.post(voice_webhook("wamid.V3", media_id))
        await served.settle()
    (message,) = served.agent.messages
    assert message.text == f'/voice_failed{{"voice_problem":"{problem}"}}'
    assert message.metadata["whatsapp"]["voice_problem"] == problem
    assert transcriber.requests == []  # refused before the endpoint
    rendered = served.channel.metrics.render()
    assert f'whatsapp_voice_notes_total{{outcome="{problem}"}} 1' in rendered


async def test_a_transcription_endpoint_slower_than_the_timeout_is_a_timeout() -> None:
    async with voice_channel(voice_timeout=0.5) as (served, _graph, transcriber):
        transcriber.say(CLIP["bom_dia"], Said("Bom dia!", delay=3.0))
        started = time.monotonic()
        await served.post(voice_webhook("wamid.V4", "bom_dia"))
        await served.settle()
        waited = time.monotonic() - started
    (message,) = served.agent.messages
    assert message.text == '/voice_failed{"voice_problem":"timeout"}'
    assert waited < 2.5
    assert 'whatsapp_voice_notes_total{outcome="timeout"} 1' in served.channel.metrics.render()


async def test_an_endpoint_that_refuses_the_token_is_unavailable() -> None:
    async with voice_channel(voice_api_token="wrong") as (served, _graph, transcriber):
        transcriber.say(CLIP["bom_dia"], Said("Bom dia!"))
        await served.post(voice_webhook("wamid.V5", "bom_dia"))
        await served.settle()
    (message,) = served.agent.messages
    assert message.text == '/voice_failed{"voice_problem":"unavailable"}'
    assert transcriber.refused_tokens == 1


async def test_a_burst_of_notes_keeps_its_order_and_other_citizens_are_not_held_up() -> None:
    # Ten notes from one citizen, the first ones the slowest to transcribe; meanwhile
    # another citizen types. The voice turns run one after another, in arrival order;
    # the typed turn does not wait for them.
    async with running_graph() as graph, running_transcriber() as transcriber:
        for index in range(10):
            content = CLIP["bom_dia"] + bytes([index])  # a distinct file per note
            graph.media[f"note{index}"] = (content, OGG)
            transcriber.say(content, Said(f"nota {index}", delay=0.2 - index * 0.015))
        cloud = CloudProvider.from_settings(settings(api_base_url=graph.url))
        async with serve_channel(
            transport=GraphMedia(cloud),
            voice_backend="api",
            voice_api_url=transcriber.url,
            voice_api_token=TOKEN,
            voice_workers=2,
        ) as served:
            started = time.monotonic()
            for index in range(10):
                await served.post(voice_webhook(f"wamid.B{index}", f"note{index}", "5511900000001"))
            await served.post(text_webhook("wamid.T1", "oi", "5511900000002"))
            typed_at = voice_done_at = 0.0
            for _ in range(1000):
                texts = [m.text for m in served.agent.messages]
                if "oi" in texts and not typed_at:
                    typed_at = time.monotonic() - started
                if len(texts) == 11:
                    voice_done_at = time.monotonic() - started
                    break
                await asyncio.sleep(0.01)
            await served.settle()
    voice = [m.text for m in served.agent.messages if m.sender_id == "5511900000001"]
    assert voice == [f"nota {index}" for index in range(10)]
    assert served.agent.overlaps == 0
    assert typed_at < 1.0 < voice_done_at  # ten notes take >1 s; the typed turn did not wait


async def test_without_a_backend_a_voice_note_is_what_it_always_was() -> None:
    async with serve_channel() as served:
        assert served.channel.voice is None
        await served.post(voice_webhook("wamid.V6", "bom_dia"))
        await served.settle()
    (message,) = served.agent.messages
    assert message.text == (
        '/send_media{"media_type":"audio","mime_type":"audio/ogg; codecs=opus"}'
    )
    assert "transcript" not in message.metadata["whatsapp"]


def test_the_voice_clips_are_the_ones_the_script_describes() -> None:
    script = (Path(__file__).resolve().parents[1] / "scripts" / "make_voice_clips.sh").read_text()
    for name in CLIP:
        assert f"{name}.ogg" in script or f"speak {name} " in script
    assert json.dumps(sorted(CLIP)) == json.dumps(sorted(p.stem for p in VOICE.glob("*.ogg")))
