"""The transcribers: ``local`` (faster-whisper on this machine's CPU) and ``api`` (an
OpenAI-compatible ``/v1/audio/transcriptions`` endpoint the operator runs).

A transcript's confidence is ``exp`` of the mean token log-probability Whisper reports
(``avg_logprob``), weighted by each segment's length: 1.0 is certain. An endpoint that
reports no segments gives no confidence (None), and its transcripts are used as they are.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.addons.whatsapp.errors import ConfigurationError
from bot.addons.whatsapp.voice.audio import Audio, NotHeard

MODEL_FILE = "model.bin"  # CTranslate2's weights, the file WPP_VOICE_MODEL_SHA256 names


@dataclass(frozen=True)
class Heard:
    """A transcript, its confidence (None: the backend gave none) and what it cost."""

    text: str
    confidence: float | None
    audio_seconds: float = 0.0
    transcribe_seconds: float = 0.0


def confidence(segments: Iterable[tuple[str, float]]) -> float | None:
    """``exp`` of the length-weighted mean ``avg_logprob`` of (text, avg_logprob) pairs."""
    weighted = total = 0.0
    for text, logprob in segments:
        weight = max(len(text.strip()), 1)
        weighted += weight * logprob
        total += weight
    if total == 0:
        return None
    return round(min(1.0, math.exp(weighted / total)), 4)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model(model_dir: str, expected_sha256: str) -> Path:
    """The model directory, once its ``model.bin`` has the configured sha256.

    Raises:
        ConfigurationError: naming the variable when the directory, the file or the hash
            is wrong (a model that is not the audited one never transcribes).
    """
    directory = Path(model_dir)
    weights = directory / MODEL_FILE
    if not weights.is_file():
        raise ConfigurationError(
            f"WPP_VOICE_MODEL_PATH: no {MODEL_FILE} in {directory} (a CTranslate2 Whisper model)"
        )
    actual = file_sha256(weights)
    if actual != expected_sha256.strip().lower():
        raise ConfigurationError(
            f"WPP_VOICE_MODEL_SHA256 does not match {weights} (its sha256 is {actual})"
        )
    return directory


class LocalWhisper:
    """faster-whisper on the CPU (int8), with voice-activity filtering and deterministic
    decoding (temperature 0, no sampling fallback, beam search). :meth:`run` blocks: the
    service calls it in its worker pool."""

    name = "local"

    def __init__(self, model_dir: str, sha256: str, language: str, threads: int) -> None:
        directory = check_model(model_dir, sha256)
        from faster_whisper import WhisperModel  # heavy: only for this backend

        self.language = language
        self.model = WhisperModel(
            str(directory), device="cpu", compute_type="int8", cpu_threads=threads
        )

    def run(self, audio: Audio) -> Heard | NotHeard:
        started = time.monotonic()
        segments, _info = self.model.transcribe(
            audio.samples,
            language=self.language,
            beam_size=5,
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=True,
        )
        parts = [(segment.text, segment.avg_logprob) for segment in segments]
        text = " ".join(part.strip() for part, _ in parts).strip()
        if not text:
            return NotHeard("no_speech")
        return Heard(text, confidence(parts), audio.seconds, time.monotonic() - started)


def api_transcript(body: Mapping[str, Any], audio: Audio, spent: float) -> Heard | NotHeard:
    """The :class:`Heard` of an OpenAI-compatible answer (``json`` or ``verbose_json``)."""
    text = str(body.get("text") or "").strip()
    if not text:
        return NotHeard("no_speech")
    segments = body.get("segments")
    parts = (
        [
            (str(segment.get("text", "")), float(segment["avg_logprob"]))
            for segment in segments
            if isinstance(segment, Mapping) and isinstance(segment.get("avg_logprob"), int | float)
        ]
        if isinstance(segments, list)
        else []
    )
    return Heard(text, confidence(parts), audio.seconds, spent)


class ApiWhisper:
    """``POST {url}/v1/audio/transcriptions`` (multipart: file, model, language,
    ``response_format=verbose_json``, temperature 0), with a bearer token when one is set."""

    name = "api"

    def __init__(self, url: str, token: str, model: str, language: str, timeout: float) -> None:
        self.endpoint = f"{url}/v1/audio/transcriptions"
        self.token = token
        self.model = model
        self.language = language
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def transcribe(self, audio: Audio, data: bytes, mime_type: str) -> Heard | NotHeard:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        form = aiohttp.FormData()
        form.add_field("file", data, filename="voice.ogg", content_type=mime_type)
        form.add_field("model", self.model)
        form.add_field("language", self.language)
        form.add_field("response_format", "verbose_json")
        form.add_field("temperature", "0")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        started = time.monotonic()
        async with self._session.post(self.endpoint, data=form, headers=headers) as response:
            if response.status != 200:
                return NotHeard("unavailable")
            try:
                body = json.loads(await response.read())
            except ValueError:
                return NotHeard("unavailable")
        if not isinstance(body, Mapping):
            return NotHeard("unavailable")
        return api_transcript(body, audio, time.monotonic() - started)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
