"""A voice note recorded in the simulator page, stored as WhatsApp would deliver it.

The page records with the browser's ``MediaRecorder``: Chromium writes WebM/Opus (usually
48 kHz, often stereo), Firefox OGG/Opus, Safari MP4/AAC. WhatsApp delivers a voice note as
OGG/Opus, mono (``tests/data/whatsapp/LIMITS.md``, media table: "OGG Opus only, mono"), and
the channel must get in the simulator what it gets in production, so ``POST /api/record``
re-encodes the recording to OGG/Opus mono 16 kHz (as ``scripts/make_voice_clips.sh`` makes
the test clips) with PyAV before storing it where the fake Graph API serves media. A remux
alone would keep a stereo or AAC recording, which WhatsApp never sends; a few seconds of
speech cost milliseconds to re-encode, in a worker thread so the event loop stays free.

The page then sends the stored media id as an ``audio`` message with ``voice: true``, as
WhatsApp marks a note recorded with the microphone button.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass

import av
from aiohttp import web

logger = logging.getLogger(__name__)

# What browsers' MediaRecorder writes (Chromium, Firefox, Safari); anything else is refused.
RECORDED_TYPES = frozenset({"audio/webm", "video/webm", "audio/ogg", "audio/mp4"})
VOICE_NOTE_TYPE = "audio/ogg"  # the media's type, as the Graph API's media endpoint gives it
VOICE_NOTE_MESSAGE_TYPE = "audio/ogg; codecs=opus"  # as a voice note's webhook carries it
SAMPLE_RATE = 16_000
BIT_RATE = 16_000  # like the committed test clips: speech, not music
MAX_SECONDS = 300.0  # a recording left running is refused rather than stored


@dataclass(frozen=True)
class VoiceNote:
    """A recording re-encoded as WhatsApp delivers a voice note."""

    data: bytes
    seconds: float


@dataclass(frozen=True)
class Refused:
    """Why a recording cannot become a voice note (said to the page, and logged)."""

    reason: str


def to_voice_note(recording: bytes, max_seconds: float = MAX_SECONDS) -> VoiceNote | Refused:
    """``recording`` (any container and codec PyAV reads) as OGG/Opus, mono, 16 kHz.

    Args:
        recording: the bytes the browser recorded.
        max_seconds: longer recordings are refused.

    Returns:
        The voice note, or why there is none (no audio stream, undecodable, empty, too long).
    """
    target = io.BytesIO()
    samples = 0
    try:
        with av.open(io.BytesIO(recording), mode="r") as source:
            if not source.streams.audio:
                return Refused("the recording has no audio stream")
            with av.open(target, mode="w", format="ogg") as output:
                stream = output.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
                stream.bit_rate = BIT_RATE
                resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
                for frame in source.decode(source.streams.audio[0]):
                    for out in resampler.resample(frame):
                        samples += out.samples
                        output.mux(stream.encode(out))
                    if samples > max_seconds * SAMPLE_RATE:
                        return Refused(f"the recording is longer than {max_seconds:.0f} s")
                for out in resampler.resample(None):  # what the resampler still holds
                    samples += out.samples
                    output.mux(stream.encode(out))
                output.mux(stream.encode(None))  # what the encoder still holds
    except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
        return Refused(f"the recording could not be decoded ({type(exc).__name__})")
    if samples == 0:
        return Refused("the recording holds no sound")
    if samples > max_seconds * SAMPLE_RATE:
        return Refused(f"the recording is longer than {max_seconds:.0f} s")
    return VoiceNote(target.getvalue(), samples / SAMPLE_RATE)


def add_recording(app: web.Application, store: Callable[[bytes, str], str]) -> None:
    """Serve ``POST /api/record`` (the body: what the page recorded, with its type).

    Args:
        app: the simulator's app.
        store: keeps media the fake Graph API serves; returns its media id.
    """

    async def record(request: web.Request) -> web.Response:
        kind = request.content_type
        if kind not in RECORDED_TYPES:
            logger.warning("Refused a recording of type %s", kind[:60])
            allowed = ", ".join(sorted(RECORDED_TYPES))
            return web.json_response(
                {"error": f"a recording must be one of {allowed}, not {kind!r}"}, status=415
            )
        note = await asyncio.to_thread(to_voice_note, await request.read())
        if isinstance(note, Refused):
            logger.warning("Refused a recording (%s): %s", kind, note.reason)
            return web.json_response({"error": note.reason}, status=400)
        media_id = store(note.data, VOICE_NOTE_TYPE)
        return web.json_response(
            {
                "id": media_id,
                "url": f"/media/{media_id}",
                "mime_type": VOICE_NOTE_MESSAGE_TYPE,
                "seconds": round(note.seconds, 2),
            }
        )

    app.router.add_post("/api/record", record)
