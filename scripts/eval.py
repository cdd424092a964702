"""``make eval``: NLU and knowledge retrieval scored on the held-out sets, per split.

NLU: the trained model (Rasa's ``Agent``) parses every phrase of ``tests/nlu_holdout.yml``;
the ``FallbackClassifier`` is applied here from the intent ranking, so one parse serves every
threshold. Retrieval: ``tests/data/knowledge_questions.yml`` against the knowledge index.
The ``final`` split is never tuned on; with ``--check`` the run fails when it is below the
targets. Misses are printed for the ``tune`` split only, so nobody tunes on the final one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from knowledge import evaluation
from knowledge.index import KnowledgeIndex
from knowledge.retriever import Retriever
from knowledge.semantic import DEFAULT_ENCODER, SemanticIndex, load_encoder

ROOT = Path(__file__).resolve().parents[1]
FALLBACK = "nlu_fallback"

# The targets of the Answers issue, held on the final split.
MIN_INTENT_ACCURACY = 0.93
MIN_TOP1 = 0.90
MIN_UNANSWERABLE_ABSTAINED = 0.90
MAX_ANSWERABLE_ABSTAINED = 0.08


@dataclass(frozen=True)
class Phrase:
    """A held-out NLU phrase with its intent and split."""

    text: str
    intent: str
    split: str


@dataclass(frozen=True)
class Parsed:
    """A phrase and the model's intent ranking (without ``nlu_fallback``), best first."""

    phrase: Phrase
    ranking: tuple[tuple[str, float], ...]


def strip_annotations(example: str) -> str:
    """``quero [iptu]{"entity": ...}`` ▸ ``quero iptu`` (entity markup removed)."""
    return re.sub(r"\[([^\]]+)\](\{[^}]*\}|\([^)]*\))", r"\1", example).strip()


def load_phrases(path: Path) -> list[Phrase]:
    """The examples of a Rasa NLU YAML file; a block's ``metadata.split`` (default tune)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    phrases = []
    for block in data.get("nlu", []):
        if "intent" not in block:
            continue
        split = str((block.get("metadata") or {}).get("split", "tune"))
        for line in str(block["examples"]).splitlines():
            line = line.strip()
            if line.startswith("- "):
                phrases.append(Phrase(strip_annotations(line[2:]), block["intent"], split))
    return phrases


def fallback_settings(config_path: Path) -> tuple[float, float]:
    """``threshold`` and ``ambiguity_threshold`` of the FallbackClassifier in config.yml."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    for component in config["pipeline"]:
        if component["name"] == "FallbackClassifier":
            return float(component["threshold"]), float(component["ambiguity_threshold"])
    raise ValueError(f"no FallbackClassifier in {config_path}")


def predict(ranking: Sequence[tuple[str, float]], threshold: float, ambiguity: float) -> str:
    """The intent Rasa's FallbackClassifier would leave: ``nlu_fallback`` when the top
    confidence is below ``threshold`` or the top two are closer than ``ambiguity``."""
    if not ranking:
        return FALLBACK
    top = ranking[0][1]
    second = ranking[1][1] if len(ranking) > 1 else 0.0
    if top < threshold or top - second < ambiguity:
        return FALLBACK
    return ranking[0][0]


def intent_accuracy(
    parsed: Sequence[Parsed], threshold: float, ambiguity: float
) -> tuple[float, dict[str, float], list[tuple[str, str, str]]]:
    """Overall accuracy, accuracy per intent, and the misses (text, expected, predicted).

    ``nlu_fallback`` counts as a miss: the target is on the intent, not on the route."""
    per_intent: dict[str, list[bool]] = defaultdict(list)
    misses = []
    for item in parsed:
        predicted = predict(item.ranking, threshold, ambiguity)
        ok = predicted == item.phrase.intent
        per_intent[item.phrase.intent].append(ok)
        if not ok:
            misses.append((item.phrase.text, item.phrase.intent, predicted))
    total = sum(len(v) for v in per_intent.values())
    correct = sum(sum(v) for v in per_intent.values())
    accuracy = correct / total if total else 0.0
    return accuracy, {k: sum(v) / len(v) for k, v in sorted(per_intent.items())}, misses


def choose_threshold(
    parsed: Sequence[Parsed], ambiguity: float, candidates: Sequence[float]
) -> float:
    """The fallback threshold in the middle of the best-scoring thresholds on tune.

    The scores are usually flat over a wide range (the model is confident on most held-out
    phrases); the middle of the range is the choice farthest from both failure modes: too
    low, off-topic messages keep a wrong intent; too high, clear messages go to fallback."""
    scores = [intent_accuracy(parsed, t, ambiguity)[0] for t in candidates]
    best = [t for t, score in zip(candidates, scores, strict=True) if score == max(scores)]
    return sorted(best)[(len(best) - 1) // 2]


async def parse_all(model: Path, phrases: Sequence[Phrase]) -> list[Parsed]:
    """Parse every phrase with the trained model (imports Rasa: slow, done once)."""
    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    # Rasa logs every parse at debug level by default; the table is the output here.
    configure_structlog(logging.WARNING)
    agent = Agent.load(str(model))
    parsed = []
    for phrase in phrases:
        result: Mapping[str, Any] = await agent.parse_message(phrase.text)
        ranking = tuple(
            (str(r["name"]), float(r["confidence"]))
            for r in result.get("intent_ranking", [])
            if r["name"] != FALLBACK
        )
        parsed.append(Parsed(phrase, ranking))
    return parsed


def print_nlu(parsed: Sequence[Parsed], threshold: float, ambiguity: float) -> dict[str, float]:
    """Print the per-intent table of both splits; returns the overall accuracy per split."""
    by_split = {s: [p for p in parsed if p.phrase.split == s] for s in evaluation.SPLITS}
    results = {s: intent_accuracy(by_split[s], threshold, ambiguity) for s in evaluation.SPLITS}
    intents = sorted({p.phrase.intent for p in parsed})
    print(f"\nNLU intent accuracy (fallback threshold {threshold:.2f}, ambiguity {ambiguity:.2f})")
    print(f"  {'intent':<22} {'tune':>6} {'final':>6}")
    for intent in intents:
        cells = [results[s][1].get(intent) for s in evaluation.SPLITS]
        shown = " ".join(f"{c:6.2f}" if c is not None else "     -" for c in cells)
        print(f"  {intent:<22} {shown}")
    counts = {s: len(by_split[s]) for s in evaluation.SPLITS}
    print(
        f"  {'ALL':<22} {results['tune'][0]:6.3f} {results['final'][0]:6.3f}"
        f"   ({counts['tune']} / {counts['final']} phrases)"
    )
    for text, expected, predicted in results["tune"][2]:
        print(f"    tune miss: {text!r}: {expected} ▸ {predicted}")
    return {s: results[s][0] for s in evaluation.SPLITS}


def print_retrieval(
    name: str, retriever: evaluation.Retriever, questions: Sequence[evaluation.Question]
) -> dict[str, evaluation.RetrievalScores]:
    """Print the retrieval table of one retriever; returns the scores per split."""
    outcomes = evaluation.run(retriever, questions)
    scores = {
        s: evaluation.score([o for o in outcomes if o.question.split == s])
        for s in evaluation.SPLITS
    }
    print(f"\nKnowledge retrieval: {name}")
    print(f"  {'':<34} {'tune':>6} {'final':>6}")
    rows = [
        ("answerable questions", "answerable", "d"),
        ("unanswerable questions", "unanswerable", "d"),
        ("top-1 (answered, right document)", "top1", "f"),
        ("top-3 (right document ranked)", "top3", "f"),
        ("unanswerable left unanswered", "unanswerable_abstained", "f"),
        ("answerable wrongly unanswered", "answerable_abstained", "f"),
        ("wrong answers", "wrong_answers", "d"),
    ]
    for label, attr, kind in rows:
        cells = [getattr(scores[s], attr) for s in evaluation.SPLITS]
        fmt = "{:6.3f}" if kind == "f" else "{:6d}"
        print(f"  {label:<34} " + " ".join(fmt.format(c) for c in cells))
    for o in outcomes:
        if o.question.split == "tune" and not o.correct:
            expected = "|".join(o.question.docs) or None
            print(f"    tune miss: {o.question.text!r}: {expected} ▸ {o.answered_doc}")
    return scores


def failures(nlu_final: float | None, final: evaluation.RetrievalScores) -> list[str]:
    """The targets the final split misses (empty when all are met)."""
    failed = []
    if nlu_final is not None and nlu_final < MIN_INTENT_ACCURACY:
        failed.append(f"intent accuracy {nlu_final:.3f} < {MIN_INTENT_ACCURACY}")
    if final.top1 < MIN_TOP1:
        failed.append(f"top-1 {final.top1:.3f} < {MIN_TOP1}")
    if final.unanswerable_abstained < MIN_UNANSWERABLE_ABSTAINED:
        failed.append(
            f"unanswerable abstained {final.unanswerable_abstained:.3f}"
            f" < {MIN_UNANSWERABLE_ABSTAINED}"
        )
    if final.answerable_abstained > MAX_ANSWERABLE_ABSTAINED:
        failed.append(
            f"answerable abstained {final.answerable_abstained:.3f} > {MAX_ANSWERABLE_ABSTAINED}"
        )
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "nova-aurora.tar.gz")
    parser.add_argument("--holdout", type=Path, default=ROOT / "tests" / "nlu_holdout.yml")
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument(
        "--questions", type=Path, default=ROOT / "tests" / "data" / "knowledge_questions.yml"
    )
    parser.add_argument("--docs", type=Path, default=ROOT / "knowledge" / "docs")
    parser.add_argument(
        "--encoder",
        default=os.environ.get("KNOWLEDGE_ENCODER", DEFAULT_ENCODER),
        help="semantic encoder to compare with BM25 (knowledge.semantic.load_encoder)",
    )
    parser.add_argument("--skip-nlu", action="store_true", help="retrieval only (no Rasa)")
    parser.add_argument("--check", action="store_true", help="exit 1 below the targets")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    nlu_final = None
    if not args.skip_nlu:
        threshold, ambiguity = fallback_settings(args.config)
        started = time.monotonic()
        parsed = asyncio.run(parse_all(args.model, load_phrases(args.holdout)))
        print(f"(parsed {len(parsed)} phrases in {time.monotonic() - started:.1f}s)")
        nlu_final = print_nlu(parsed, threshold, ambiguity)["final"]
        tune = [p for p in parsed if p.phrase.split == "tune"]
        candidates = [round(0.05 * i, 2) for i in range(2, 19)]
        sweep = ", ".join(
            f"{t:.2f}:{intent_accuracy(tune, t, ambiguity)[0]:.3f}" for t in candidates
        )
        print(f"  fallback threshold sweep on tune: {sweep}")
        print(f"  best on tune: {choose_threshold(tune, ambiguity, candidates):.2f}")

    questions = evaluation.load_questions(args.questions)
    tune_questions = [q for q in questions if q.split == "tune"]
    index = KnowledgeIndex(args.docs)
    retrievers = [Retriever(index)]
    encoder = load_encoder(args.encoder)
    if encoder is not None:
        retrievers.append(Retriever(index, SemanticIndex(index, encoder)))
    scores = {}
    for retriever in retrievers:
        scores[retriever.name] = print_retrieval(retriever.name, retriever, questions)
        chosen, cost = evaluation.choose_policy(
            retriever, tune_questions, evaluation.policy_grid(retriever.semantic is not None)
        )
        shipped = evaluation.policy_cost(
            retriever.policy, [(q, retriever.evidence(q.text)) for q in tune_questions]
        )
        print(f"  policy in use: {retriever.policy} (tune cost {shipped})")
        print(f"  cheapest on tune: {chosen} (tune cost {cost})")
    times = {r.name: evaluation.latencies_ms(r, questions) for r in retrievers}
    print("\nLatency per question (ms, same run):")
    for name, values in times.items():
        p50, p99 = evaluation.percentile(values, 0.5), evaluation.percentile(values, 0.99)
        print(f"  {name:<28} p50 {p50:6.2f}   p99 {p99:6.2f}")
    # The service ranks with the encoder when one is configured: that is what must meet them.
    default = retrievers[-1]
    failed = failures(nlu_final, scores[default.name]["final"])
    print(f"Targets checked on: {default.name}")
    print()
    if failed:
        print("Final split below the targets: " + "; ".join(failed))
    else:
        print("Final split meets every target.")
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
