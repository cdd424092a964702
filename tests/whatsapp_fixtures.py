"""Loading the recorded WhatsApp payloads in tests/data/whatsapp/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "whatsapp"


def fixture(name: str) -> Any:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def fixture_names(prefix: str) -> list[str]:
    return sorted(p.stem for p in DATA.glob(f"{prefix}*.json"))
