"""The voice service: download ▸ decode ▸ transcribe, in a bounded worker pool, and what
Rasa then receives.

It runs inside a message's turn (``delivery/turn.py``), so the per-sender queue keeps a
citizen's messages in order while other citizens' turns go on: decoding and local
transcription run on ``WPP_VOICE_WORKERS`` threads (CTranslate2 and FFmpeg release the
GIL), never on the event loop. Every outcome is counted in ``whatsapp_voice_notes_total``.

What Rasa receives:

* a transcript at or above ``WPP_VOICE_CONFIRM_BELOW``: the transcript, as typed text;
* below it: ``/voice_confirm{"voice_transcript": …}`` (the bot asks "É isso?");
* no transcript: ``/voice_failed{"voice_problem": …}`` (too_long, undecodable, no_speech,
  timeout, unavailable, download), and the bot asks the citizen to type.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp

from bot.addons.whatsapp.config import InboundIntents, WhatsAppSettings
from bot.addons.whatsapp.errors import ConfigurationError
from bot.addons.whatsapp.inbound.events import InboundMessage
from bot.addons.whatsapp.inbound.to_rasa import intent_payload
from bot.addons.whatsapp.metrics import Metrics
from bot.addons.whatsapp.providers.base import Provider
from bot.addons.whatsapp.voice.audio import Audio, NotHeard, decode
from bot.addons.whatsapp.voice.backends import ApiWhisper, Heard, LocalWhisper

logger = logging.getLogger(__name__)

# WhatsApp's own limit for audio media (16 MB): anything larger is not a voice note.
MAX_AUDIO_BYTES = 16 * 1024 * 1024


def rasa_text(outcome: Heard | NotHeard, confirm_below: float, intents: InboundIntents) -> str:
    """What Rasa receives for a voice note's outcome (see the module docstring)."""
    if isinstance(outcome, NotHeard):
        return intent_payload(intents.voice_failed, {"voice_problem": outcome.problem})
    # A leading "/" would make Rasa read the transcript as an intent payload.
    text = outcome.text.lstrip("/ ").strip()
    if outcome.confidence is not None and outcome.confidence < confirm_below:
        return intent_payload(intents.voice_confirm, {"voice_transcript": text})
    return text


def voice_metadata(outcome: Heard | NotHeard, media_id: str) -> dict[str, Any]:
    """What ``metadata["whatsapp"]`` gains for a voice note."""
    if isinstance(outcome, NotHeard):
        return {
            "transcript": None,
            "confidence": None,
            "media_id": media_id,
            "voice_problem": outcome.problem,
        }
    return {
        "transcript": outcome.text,
        "confidence": outcome.confidence,
        "media_id": media_id,
        "voice_problem": None,
    }


def _media_id(message: InboundMessage) -> str:
    audio = message.data.get("audio")
    return str(audio.get("id") or "") if isinstance(audio, Mapping) else ""


class VoiceNotes:
    """Transcribes inbound audio messages with the configured backend."""

    def __init__(
        self, settings: WhatsAppSettings, metrics: Metrics, backend: LocalWhisper | ApiWhisper
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.backend = backend
        self.pool = ThreadPoolExecutor(
            max_workers=settings.voice_workers, thread_name_prefix="voice"
        )

    @classmethod
    def from_settings(cls, settings: WhatsAppSettings, metrics: Metrics) -> VoiceNotes | None:
        """The service for ``WPP_VOICE_BACKEND``, None for ``none``.

        Raises:
            ConfigurationError: naming a missing variable, or the local model is missing or
                not the configured one.
        """
        required = {
            "local": {
                "WPP_VOICE_MODEL_PATH": settings.voice_model_path,
                "WPP_VOICE_MODEL_SHA256": settings.voice_model_sha256,
            },
            "api": {"WPP_VOICE_API_URL": settings.voice_api_url},
        }.get(settings.voice_backend, {})
        missing = [variable for variable, value in required.items() if not value]
        if missing:
            raise ConfigurationError(
                f"WPP_VOICE_BACKEND={settings.voice_backend} cannot start: set the environment "
                f"variable{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                "(see variables.env.example)"
            )
        backend: LocalWhisper | ApiWhisper
        if settings.voice_backend == "local":
            backend = LocalWhisper(
                settings.voice_model_path,
                settings.voice_model_sha256,
                settings.voice_language,
                settings.voice_threads,
            )
        elif settings.voice_backend == "api":
            backend = ApiWhisper(
                settings.voice_api_url,
                settings.voice_api_token,
                settings.voice_api_model,
                settings.voice_language,
                settings.voice_timeout,
            )
        else:
            return None
        return cls(settings, metrics, backend)

    @property
    def name(self) -> str:
        return self.backend.name

    async def understand(
        self, message: InboundMessage, provider: Provider
    ) -> tuple[str, dict[str, Any]]:
        """The text Rasa receives for an audio message, and its metadata additions."""
        media_id = _media_id(message)
        outcome = await self.hear(media_id, provider)
        if isinstance(outcome, NotHeard):
            self.metrics.voice_notes[outcome.problem] += 1
            logger.info("Voice note %s not transcribed: %s", message.wamid, outcome.problem)
        else:
            sure = outcome.confidence is None or outcome.confidence >= (
                self.settings.voice_confirm_below
            )
            self.metrics.voice_notes["transcribed" if sure else "confirm"] += 1
            self.metrics.voice_audio_seconds += outcome.audio_seconds
            self.metrics.voice_transcribe_seconds += outcome.transcribe_seconds
        text = rasa_text(outcome, self.settings.voice_confirm_below, self.settings.intents)
        return text, voice_metadata(outcome, media_id)

    async def hear(self, media_id: str, provider: Provider) -> Heard | NotHeard:
        """Download, decode and transcribe one note; every failure is an outcome."""
        if not media_id:
            return NotHeard("download")
        try:
            data, mime_type = await asyncio.wait_for(
                provider.download_media(media_id), self.settings.voice_timeout
            )
        except Exception as error:  # any failure is "could not download"
            logger.warning("Could not download voice note %s: %s", media_id, error)
            return NotHeard("download")
        if len(data) > MAX_AUDIO_BYTES:
            return NotHeard("too_long")
        try:
            return await asyncio.wait_for(
                self._transcribe(data, mime_type or "audio/ogg"), self.settings.voice_timeout
            )
        except asyncio.TimeoutError:
            return NotHeard("timeout")
        except aiohttp.ClientError as error:
            logger.warning("The transcription endpoint failed: %s", error)
            return NotHeard("unavailable")

    async def _transcribe(self, data: bytes, mime_type: str) -> Heard | NotHeard:
        loop = asyncio.get_running_loop()
        if isinstance(self.backend, LocalWhisper):
            return await loop.run_in_executor(self.pool, self._decode_and_run, data)
        audio = await loop.run_in_executor(self.pool, self._decode, data)
        if isinstance(audio, NotHeard):
            return audio
        return await self.backend.transcribe(audio, data, mime_type)

    def _decode(self, data: bytes) -> Audio | NotHeard:
        return decode(data, self.settings.voice_max_seconds)

    def _decode_and_run(self, data: bytes) -> Heard | NotHeard:
        audio = self._decode(data)
        if isinstance(audio, NotHeard):
            return audio
        assert isinstance(self.backend, LocalWhisper)
        return self.backend.run(audio)

    async def close(self) -> None:
        """Stop the pool (a transcription in progress finishes) and close the session."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        if isinstance(self.backend, ApiWhisper):
            await self.backend.close()
