"""The simulator page in headless Chromium: a voice note uploaded as a file, or recorded
with the 🎤 button from Chromium's fake microphone, is heard by a real ``rasa run`` (local
Whisper, the test model) and the page shows what the bot heard, read from Rasa's tracker as
``make run`` wires it (``--enable-api`` behind a token)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from scripts.voice_dev_model import join_model
from tests.support.browser import headless_chromium
from tests.support.stack import (
    ROOT,
    VENV_BIN,
    Proc,
    free_port,
    start_process,
    start_rasa,
    write_endpoints,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
SECRETS = {
    "WPP_AUTHORIZATION_TOKEN": "browser-voice-access-token",
    "WPP_VERIFY_TOKEN": "browser-voice-verify-token",
    "WPP_APP_SECRET": "browser-voice-app-secret",
    "WPP_PHONE_NUMBER_IDENTIFIER": "100000000000002",
}
CLIP = ROOT / "tests" / "data" / "voice" / "bom_dia.ogg"


@pytest.fixture(scope="module")
def simulator_url(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The simulator and ``rasa run`` with the local voice backend and Rasa's HTTP API."""
    ports = {name: free_port() for name in ("simulator", "rasa")}
    model_dir = tmp_path_factory.mktemp("whisper-base")
    digest = join_model(model_dir)
    token = secrets.token_urlsafe(16)
    env = {**SECRETS, "WPP_API_BASE_URL": f"http://127.0.0.1:{ports['simulator']}"}
    procs: list[Proc] = []
    try:
        procs.append(
            start_process(
                "simulator-voice",
                [
                    str(VENV_BIN / "python"),
                    "-m",
                    "simulator",
                    "--port",
                    str(ports["simulator"]),
                    "--webhook-url",
                    f"http://127.0.0.1:{ports['rasa']}/webhooks/whatsapp/webhook",
                ],
                {
                    **env,
                    "SIMULATOR_RASA_URL": f"http://127.0.0.1:{ports['rasa']}",
                    "SIMULATOR_RASA_TOKEN": token,
                },
                f"http://127.0.0.1:{ports['simulator']}/health",
                ports["simulator"],
            )
        )
        procs.append(
            start_rasa(
                ports["rasa"],
                {
                    **env,
                    "WPP_VOICE_BACKEND": "local",
                    "WPP_VOICE_MODEL_PATH": str(model_dir),
                    "WPP_VOICE_MODEL_SHA256": digest,
                    "WPP_VOICE_CONFIRM_BELOW": "0.33",  # espeak's voice: see test_voice_local
                },
                credentials=ROOT / "credentials.yml",
                endpoints=write_endpoints(model_dir.parent / "endpoints.yml", None),
                model=trained_model,
                name="rasa-browser-voice",
                extra_args=["--enable-api", "--auth-token", token],
            )
        )
        yield f"http://127.0.0.1:{ports['simulator']}"
    finally:
        for proc in reversed(procs):
            proc.stop()


def test_an_uploaded_voice_note_shows_the_transcript_the_bot_used(simulator_url: str) -> None:
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 460, "height": 900})
        page.goto(simulator_url)
        page.fill("#number", "5561977770001")
        page.dispatch_event("#number", "change")
        page.set_input_files("#file", str(CLIP))

        page.wait_for_selector(".bubble.user audio", timeout=10_000)
        shown = page.wait_for_selector(".bubble.user .transcript", timeout=90_000)
        assert shown is not None
        text = shown.inner_text()
        assert text.startswith("🎤 O bot entendeu: “Bom dia!” (confiança ")
        assert text.endswith("%)")
        # …and the bot answered it as the typed greeting.
        page.wait_for_selector(".bubble.bot .list-open", timeout=60_000)
        assert "Prefeitura de Nova Aurora" in page.inner_text(".bubble.bot")
        # The chat redraws every 0.7 s: the line stays under the voice note.
        page.wait_for_timeout(2_000)
        assert page.inner_text(".bubble.user .transcript") == text


def fake_microphone(clip: Path, wav: Path) -> Path:
    """``clip`` as the WAV Chromium's fake microphone plays, after a second of silence (the
    capture starts before the recorder does: nothing said is lost in between)."""
    with (
        av.open(str(clip), mode="r") as source,
        av.open(str(wav), mode="w", format="wav") as target,
    ):
        stream = target.add_stream("pcm_s16le", rate=48_000, layout="mono")
        silence = av.AudioFrame.from_ndarray(
            np.zeros((1, 48_000), dtype=np.int16), format="s16", layout="mono"
        )
        silence.sample_rate = 48_000
        target.mux(stream.encode(silence))
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
        for frame in source.decode(source.streams.audio[0]):
            for part in resampler.resample(frame):
                target.mux(stream.encode(part))
        for part in resampler.resample(None):
            target.mux(stream.encode(part))
        target.mux(stream.encode(None))
    return wav


def test_a_voice_note_recorded_with_the_microphone_is_heard_and_answered(
    simulator_url: str, tmp_path: Path
) -> None:
    wav = fake_microphone(CLIP, tmp_path / "bom_dia.wav")
    number = "5561977770002"
    # A microphone that plays the clip once, with no permission prompt.
    microphone = (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
    )
    with headless_chromium(*microphone) as browser:
        context = browser.new_context(
            permissions=["microphone"], viewport={"width": 460, "height": 900}
        )
        page = context.new_page()
        page.goto(simulator_url)
        page.fill("#number", number)
        page.dispatch_event("#number", "change")

        page.click("#record")
        page.wait_for_selector("#record[aria-pressed='true']", timeout=10_000)
        page.wait_for_timeout(4_000)  # the second of silence, "bom dia", and a pause
        page.click("#record")

        page.wait_for_selector(".bubble.user audio", timeout=15_000)
        sent = page.evaluate(
            f"fetch('/api/messages?number={number}').then((answer) => answer.json())"
        )
        (note,) = [item["body"] for item in sent["messages"] if item["direction"] == "in"]
        assert note["audio"] == {
            "mime_type": "audio/ogg; codecs=opus",
            "sha256": "SIMULATED",
            "id": note["audio"]["id"],
            "voice": True,
        }
        shown = page.wait_for_selector(".bubble.user .transcript", timeout=90_000)
        assert shown is not None
        text = shown.inner_text()
        # What Whisper base made of the recording (49% here): the words, not the punctuation.
        assert text.startswith("🎤 O bot entendeu: “")
        assert "bom dia" in text.lower()
        page.wait_for_selector(".bubble.bot .list-open", timeout=60_000)
        assert "Prefeitura de Nova Aurora" in page.inner_text(".bubble.bot")
