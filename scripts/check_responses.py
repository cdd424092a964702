"""Fail when a domain response's ``custom.whatsapp`` body is malformed (``make validate``).

A template response without its name or language (or any other ``custom.whatsapp`` body
WhatsApp would refuse) is otherwise found only when the bot tries to send it: the log names
it and the citizen gets nothing. The rules are the converter's own
(:func:`bot.addons.whatsapp.outbound.custom.check_custom`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bot.addons.whatsapp.outbound.custom import check_custom


def problems(domain: Mapping[str, Any]) -> list[str]:
    """``utter_x[i]: problem`` for each malformed ``custom.whatsapp`` body."""
    found = []
    responses = domain.get("responses") or {}
    for name, variants in sorted(responses.items()):
        for index, variant in enumerate(variants or []):
            custom = variant.get("custom") if isinstance(variant, Mapping) else None
            if isinstance(custom, Mapping) and "whatsapp" in custom:
                found += [f"{name}[{index}]: {p}" for p in check_custom(custom["whatsapp"])]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("domain", type=Path, nargs="?", default=Path("domain.yml"))
    args = parser.parse_args(argv)
    wrong = problems(yaml.safe_load(args.domain.read_text(encoding="utf-8")) or {})
    for line in wrong:
        print(f"{args.domain}: {line}", file=sys.stderr)
    if wrong:
        return 1
    print(f"{args.domain}: every custom.whatsapp response is well formed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
