"""Decoding a voice note (WhatsApp sends OGG/Opus) to 16 kHz mono samples, with PyAV.

PyAV ships FFmpeg's decoders inside its wheel: no system ffmpeg is needed at run time.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import av
import numpy as np

SAMPLE_RATE = 16_000  # what Whisper models expect

Problem = Literal["too_long", "undecodable", "no_speech", "timeout", "unavailable", "download"]


@dataclass(frozen=True)
class Audio:
    """Decoded audio: float32 samples in [-1, 1] at :data:`SAMPLE_RATE`, mono."""

    samples: np.ndarray
    seconds: float


@dataclass(frozen=True)
class NotHeard:
    """Why a voice note has no transcript (a metrics label and the entity Rasa gets)."""

    problem: Problem


def decode(data: bytes, max_seconds: float) -> Audio | NotHeard:
    """The samples of ``data``, or why there are none.

    Decoding stops as soon as the note runs past ``max_seconds`` (a long note costs no
    more than the limit to refuse).
    """
    limit = int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            streams = container.streams.audio
            if not streams:
                return NotHeard("undecodable")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(streams[0]):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += chunk.size
                if total > limit:
                    return NotHeard("too_long")
            for out in resampler.resample(None):  # flush what the resampler holds
                chunk = out.to_ndarray().reshape(-1)
                chunks.append(chunk)
                total += chunk.size
    except (av.FFmpegError, ValueError, OSError, EOFError):
        return NotHeard("undecodable")
    if total == 0:
        return NotHeard("undecodable")
    if total > limit:
        return NotHeard("too_long")
    samples = np.concatenate(chunks).astype(np.float32) / 32768.0
    return Audio(samples, total / SAMPLE_RATE)
