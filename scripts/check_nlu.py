"""Fail when the intent accuracy in a `rasa test nlu` report is below a threshold."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", type=Path, help="intent_report.json written by rasa test nlu")
    parser.add_argument("--min-accuracy", type=float, default=0.90)
    args = parser.parse_args(argv)

    report = json.loads(args.report.read_text(encoding="utf-8"))
    accuracy = float(report["accuracy"])
    worst = sorted(
        (name, values["f1-score"])
        for name, values in report.items()
        if isinstance(values, dict)
        and "f1-score" in values
        and name not in {"macro avg", "weighted avg", "micro avg"}
    )
    print(f"held-out intent accuracy: {accuracy:.3f} (minimum {args.min_accuracy:.2f})")
    for name, f1 in sorted(worst, key=lambda item: item[1])[:5]:
        print(f"  {name:<24} f1={f1:.2f}")
    if accuracy < args.min_accuracy:
        print("FAILED: held-out intent accuracy below the minimum", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
