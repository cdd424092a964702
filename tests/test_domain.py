"""The bot's domain: mistakes Rasa accepts silently but that cost every conversation."""

from __future__ import annotations

from typing import Any

import yaml

from tests.support.stack import ROOT

DOMAIN: dict[str, Any] = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


def test_no_slot_mapping_runs_a_custom_action_on_every_message() -> None:
    # Rasa's action_extract_slots runs a custom mapping's `action` after *every* user
    # message and sends what it utters: action_ask_knowledge named there asked the
    # knowledge API for "oi" and answered real questions twice.
    named = {
        slot: mapping["action"]
        for slot, spec in DOMAIN["slots"].items()
        for mapping in spec.get("mappings", [])
        if mapping.get("type") == "custom" and "action" in mapping
    }
    assert named == {}
