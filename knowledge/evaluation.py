"""Scoring of retrieval and abstention on the held-out question sets (no Rasa here).

The sets live in ``tests/data/knowledge_questions.yml``: answerable questions with the
document that answers them, and questions no document answers, each split into ``tune``
(used to choose synonyms, weights and thresholds) and ``final`` (never tuned on).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

from knowledge.index import Hit

SPLITS = ("tune", "final")


@dataclass(frozen=True)
class Question:
    """One held-out question; ``doc`` is None when no document answers it."""

    text: str
    doc: str | None
    split: str


class Retriever(Protocol):
    """What the evaluation needs from an index: a ranking and an answer-or-abstain."""

    def search(self, question: str, limit: int = 3) -> list[Hit]: ...

    def answer(self, question: str) -> Hit | None: ...


def load_questions(path: Path) -> list[Question]:
    """The questions of ``path``, answerable ones first, in file order."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    questions = []
    for split in SPLITS:
        for item in data["answerable"][split]:
            questions.append(Question(str(item["q"]), str(item["doc"]), split))
    for split in SPLITS:
        for text in data["unanswerable"][split]:
            questions.append(Question(str(text), None, split))
    return questions


@dataclass(frozen=True)
class Outcome:
    """What the retriever did with one question."""

    question: Question
    answered_doc: str | None
    top3_docs: tuple[str, ...]

    @property
    def correct(self) -> bool:
        """Answered from the right document, or left unanswered when none answers it."""
        return self.answered_doc == self.question.doc


@dataclass(frozen=True)
class RetrievalScores:
    """The retrieval figures of one split (shares in 0..1)."""

    answerable: int
    unanswerable: int
    top1: float
    top3: float
    unanswerable_abstained: float
    answerable_abstained: float
    wrong_answers: int


def run(retriever: Retriever, questions: Iterable[Question]) -> list[Outcome]:
    """Ask every question; the ranking (top-3 documents) and the answer-or-abstain."""
    outcomes = []
    for question in questions:
        hit = retriever.answer(question.text)
        ranking = tuple(h.section.slug for h in retriever.search(question.text, limit=3))
        outcomes.append(Outcome(question, hit.section.slug if hit else None, ranking))
    return outcomes


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def score(outcomes: Sequence[Outcome]) -> RetrievalScores:
    """Top-1 counts an answer from the right document (abstaining is a miss); top-3 counts
    the right document among the first three ranked, whatever the abstention decided."""
    answerable = [o for o in outcomes if o.question.doc is not None]
    unanswerable = [o for o in outcomes if o.question.doc is None]
    return RetrievalScores(
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        top1=_share(sum(o.correct for o in answerable), len(answerable)),
        top3=_share(sum(o.question.doc in o.top3_docs for o in answerable), len(answerable)),
        unanswerable_abstained=_share(
            sum(o.answered_doc is None for o in unanswerable), len(unanswerable)
        ),
        answerable_abstained=_share(
            sum(o.answered_doc is None for o in answerable), len(answerable)
        ),
        wrong_answers=sum(o.answered_doc is not None and not o.correct for o in outcomes),
    )
