"""`make eval`: the fallback rule, the scoring and the targets on the final split."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench import knowledge_latency
from knowledge.evaluation import RetrievalScores, percentile
from scripts.eval import (
    MIN_INTENT_ACCURACY,
    Parsed,
    Phrase,
    choose_threshold,
    failures,
    fallback_settings,
    intent_accuracy,
    load_phrases,
    parse_all,
    predict,
    strip_annotations,
)

ROOT = Path(__file__).resolve().parents[1]


def parsed(text: str, intent: str, *ranking: tuple[str, float]) -> Parsed:
    return Parsed(Phrase(text, intent, "tune"), tuple(ranking))


@pytest.mark.parametrize(
    ("ranking", "expected"),
    [
        ((("greet", 0.9), ("menu", 0.05)), "greet"),
        ((("greet", 0.4), ("menu", 0.3)), "nlu_fallback"),  # below the threshold
        ((("greet", 0.52), ("menu", 0.46)), "nlu_fallback"),  # too close to the second
        ((), "nlu_fallback"),
    ],
)
def test_the_fallback_rule_is_rasas(ranking: tuple[tuple[str, float], ...], expected: str) -> None:
    assert predict(ranking, threshold=0.45, ambiguity=0.1) == expected


def test_accuracy_is_per_intent_and_a_fallback_is_a_miss() -> None:
    items = [
        parsed("oi", "greet", ("greet", 0.9), ("menu", 0.1)),
        parsed("eae", "greet", ("greet", 0.4), ("menu", 0.1)),
        parsed("menu", "menu", ("menu", 0.8), ("greet", 0.1)),
    ]
    accuracy, per_intent, misses = intent_accuracy(items, threshold=0.45, ambiguity=0.1)
    assert accuracy == pytest.approx(2 / 3)
    assert per_intent == {"greet": 0.5, "menu": 1.0}
    assert misses == [("eae", "greet", "nlu_fallback")]


def test_the_threshold_is_the_middle_of_the_best_on_tune() -> None:
    items = [
        parsed("oi", "greet", ("greet", 0.7), ("menu", 0.1)),
        parsed("xyz", "out_of_scope", ("greet", 0.5), ("out_of_scope", 0.3)),
    ]
    # 0.3-0.5: "xyz" is greet (a miss); 0.55-0.7: fallback (a miss too); above 0.7 both miss.
    assert choose_threshold(items, 0.1, [0.3, 0.5, 0.55, 0.7, 0.75]) == 0.5
    assert choose_threshold(items, 0.1, [0.3, 0.5, 0.55, 0.6, 0.7, 0.75]) == 0.55


def test_held_out_phrases_keep_their_split_and_lose_entity_markup() -> None:
    assert strip_annotations('quero [iptu]{"entity": "service"} hoje') == "quero iptu hoje"
    phrases = load_phrases(ROOT / "tests" / "nlu_holdout.yml")
    assert {p.split for p in phrases} == {"tune", "final"}
    assert fallback_settings(ROOT / "config.yml")[1] == 0.1


def test_failures_name_each_target_missed() -> None:
    good = RetrievalScores(50, 20, 0.95, 1.0, 0.95, 0.02, 1)
    assert failures(0.95, good) == []
    bad = RetrievalScores(50, 20, 0.85, 1.0, 0.80, 0.10, 9)
    assert [f.split()[0] for f in failures(0.90, bad)] == [
        "intent",
        "top-1",
        "unanswerable",
        "answerable",
    ]


def test_the_latency_bench_measures_bm25_alone_without_an_encoder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert knowledge_latency.main(["--encoder", "none", "--rounds", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "encoder 'none' unavailable: BM25 alone"
    assert lines[2].split()[:2] == ["BM25", "p50"] and len(lines) == 3


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([7.0], 0.99) == 7.0


@pytest.mark.e2e  # loads the trained model (~40 s)
def test_intent_accuracy_on_the_final_split_meets_the_target(trained_model: Path) -> None:
    threshold, ambiguity = fallback_settings(ROOT / "config.yml")
    phrases = [p for p in load_phrases(ROOT / "tests" / "nlu_holdout.yml") if p.split == "final"]
    accuracy, per_intent, misses = intent_accuracy(
        asyncio.run(parse_all(trained_model, phrases)), threshold, ambiguity
    )
    print(f"\nfinal intent accuracy {accuracy:.3f}: {per_intent}")
    assert accuracy >= MIN_INTENT_ACCURACY, misses
