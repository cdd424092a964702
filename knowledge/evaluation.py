"""Scoring of retrieval and abstention on the held-out question sets (no Rasa here).

The sets live in ``tests/data/knowledge_questions.yml``: answerable questions with the
document that answers them, and questions no document answers, each split into ``tune``
(used to choose synonyms, weights and thresholds) and ``final`` (never tuned on).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

from knowledge.index import Hit
from knowledge.retriever import Evidence, Policy

SPLITS = ("tune", "final")


@dataclass(frozen=True)
class Question:
    """One held-out question and the documents that answer it (none: unanswerable)."""

    text: str
    docs: tuple[str, ...]
    split: str

    @property
    def answerable(self) -> bool:
        return bool(self.docs)


class Retriever(Protocol):
    """What the evaluation needs from an index: a ranking and an answer-or-abstain."""

    def search(self, question: str, limit: int = 3) -> list[Hit]: ...

    def answer(self, question: str) -> Hit | None: ...

    def evidence(self, question: str) -> Evidence: ...


def load_questions(path: Path) -> list[Question]:
    """The questions of ``path``, answerable ones first, in file order."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    questions = []
    for split in SPLITS:
        for item in data["answerable"][split]:
            docs = item["doc"] if isinstance(item["doc"], list) else [item["doc"]]
            questions.append(Question(str(item["q"]), tuple(str(d) for d in docs), split))
    for split in SPLITS:
        for text in data["unanswerable"][split]:
            questions.append(Question(str(text), (), split))
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
        if self.answered_doc is None:
            return not self.question.answerable
        return self.answered_doc in self.question.docs


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
    answerable = [o for o in outcomes if o.question.answerable]
    unanswerable = [o for o in outcomes if not o.question.answerable]
    return RetrievalScores(
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        top1=_share(sum(o.correct for o in answerable), len(answerable)),
        top3=_share(
            sum(any(d in o.top3_docs for d in o.question.docs) for o in answerable),
            len(answerable),
        ),
        unanswerable_abstained=_share(
            sum(o.answered_doc is None for o in unanswerable), len(unanswerable)
        ),
        answerable_abstained=_share(
            sum(o.answered_doc is None for o in answerable), len(answerable)
        ),
        wrong_answers=sum(o.answered_doc is not None and not o.correct for o in outcomes),
    )


def policy_grid(semantic: bool) -> list[Policy]:
    """The candidate abstention policies searched on the tune split."""
    floors = [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    unknowns = [0.34, 0.5, 0.6, 0.7, 1.0]
    if semantic:
        return [
            Policy(min_bm25=b, max_unknown=u, min_bm25_disagree=d)
            for b in floors
            for u in unknowns
            for d in [0.0, 6.0, 8.0, 9.0, 10.0, 12.0, 15.0, 20.0, 1000.0]
        ]
    return [
        Policy(min_bm25=b, max_unknown=u, min_bm25_margin=m)
        for b in floors
        for u in unknowns
        for m in [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    ]


# A wrong answer costs twice a missed one: for a government bot a wrong answer is worse
# than "I don't know".
COST_WRONG_ANSWER = 2
COST_MISSED_ANSWER = 1


def policy_cost(policy: Policy, evidence: Sequence[tuple[Question, Evidence]]) -> int:
    """The cost of ``policy`` on questions whose evidence is already computed."""
    cost = 0
    for question, item in evidence:
        answered = item.section is not None and policy.accepts(item)
        right = answered and item.section is not None and item.section.slug in question.docs
        if answered and not right:
            cost += COST_WRONG_ANSWER
        elif not answered and question.answerable:
            cost += COST_MISSED_ANSWER
    return cost


def choose_policy(
    retriever: Retriever, questions: Iterable[Question], candidates: Iterable[Policy]
) -> tuple[Policy, int]:
    """The cheapest candidate policy on ``questions`` (meant for the tune split); among
    equally cheap ones the most cautious (highest BM25 floor, fewest unknown words allowed,
    highest margin and disagreement floors)."""
    evidence = [(q, retriever.evidence(q.text)) for q in questions]

    def key(policy: Policy) -> tuple[int, float, float, float, float]:
        return (
            policy_cost(policy, evidence),
            -policy.min_bm25,
            policy.max_unknown,
            -policy.min_bm25_margin,
            -policy.min_bm25_disagree,
        )

    best = min(candidates, key=key)
    return best, key(best)[0]


def latencies_ms(
    retriever: Retriever, questions: Sequence[Question], rounds: int = 1
) -> list[float]:
    """Time of ``answer`` per question, in milliseconds, sorted (after one warm-up)."""
    retriever.answer(questions[0].text)
    times = []
    for _ in range(rounds):
        for question in questions:
            started = time.perf_counter()
            retriever.answer(question.text)
            times.append((time.perf_counter() - started) * 1000)
    return sorted(times)


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    rank = max(0, min(len(sorted_values) - 1, math.ceil(share * len(sorted_values)) - 1))
    return sorted_values[rank]
