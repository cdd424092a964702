"""Retrieval quality of the embedded knowledge service on citizens' own phrasings."""

from __future__ import annotations

from pathlib import Path

import yaml

from knowledge.index import KnowledgeIndex

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = yaml.safe_load(
    (ROOT / "tests" / "data" / "knowledge_questions.yml").read_text(encoding="utf-8")
)["questions"]


def test_top1_accuracy_on_the_retrieval_set_is_at_least_85_percent() -> None:
    index = KnowledgeIndex(ROOT / "knowledge" / "docs")
    assert len(QUESTIONS) >= 40
    misses = []
    for item in QUESTIONS:
        hit = index.answer(item["q"])
        if hit is None or hit.section.slug != item["doc"]:
            misses.append((item["q"], item["doc"], hit.section.slug if hit else None))
    accuracy = 1 - len(misses) / len(QUESTIONS)
    print(f"\nknowledge top-1 accuracy: {accuracy:.3f} on {len(QUESTIONS)} questions")
    for miss in misses:
        print("  miss:", miss)
    assert accuracy >= 0.85, misses
