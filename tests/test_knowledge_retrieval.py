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


def test_what_do_you_do_with_my_data_is_answered_from_the_data_document() -> None:
    index = KnowledgeIndex(ROOT / "knowledge" / "docs")
    hit = index.answer("o que vocês fazem com meus dados?")
    assert hit is not None
    assert (hit.section.slug, hit.section.title) == (
        "dados-pessoais",
        "O que fazemos com seus dados",
    )
    erasure = index.answer("como faço para apagar meus dados?")
    assert erasure is not None
    assert erasure.section.title == "Como pedir uma cópia ou apagar seus dados"
