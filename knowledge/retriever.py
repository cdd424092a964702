"""Ranking and the decision to answer: BM25 always, fused with the semantic ranker when
there is one; an answer only with enough evidence, otherwise "I don't know".

Ranking: reciprocal-rank fusion of the BM25 ranking and the cosine ranking of the sections.
Evidence for the chosen section (``Evidence``): its BM25 score and margin over the best
section of another document, the share of the question's words no document uses, its cosine
similarity and margin, and whether both rankers put the same document first. ``Policy`` turns
the evidence into answer-or-abstain; its thresholds are chosen on the tune split by
``make eval`` (``scripts/eval.py``) and reported on the final split.
"""

from __future__ import annotations

from dataclasses import dataclass

from knowledge.index import Hit, KnowledgeIndex, Section, analyse, stem
from knowledge.semantic import SemanticIndex

# Reciprocal-rank fusion constant: small, because the rankings are short.
RRF_K = 5
BM25_CANDIDATES = 20


@dataclass(frozen=True)
class Evidence:
    """What supports answering from ``section`` (None when nothing was found).

    ``bm25``: the section's BM25 score (0 when BM25 did not match it); ``bm25_margin``: the
    share of it above the best section of another document; ``unknown``: the share of the
    question's own words that no document uses and no synonym explains (a question about
    something else); ``cosine_margin``: the section's cosine similarity minus the best of
    another document; ``agree``: both rankers put this document first."""

    section: Section | None
    bm25: float = 0.0
    bm25_margin: float = 0.0
    unknown: float = 0.0
    cosine: float | None = None
    cosine_margin: float | None = None
    agree: bool | None = None
    off_topic: str | None = None


@dataclass(frozen=True)
class Policy:
    """The answer-or-abstain rule. ``BM25_POLICY`` and ``FUSED_POLICY`` are the cheapest on
    the tune split (``knowledge.evaluation.choose_policy``; ``make eval`` prints the choice).

    Never answer a question about another government's or city's matter, or one where
    more than ``max_unknown`` of the words are unknown to the documents. BM25 must reach
    ``min_bm25`` on the section (a semantic match alone never answers). With the semantic
    ranker, when the two rankers disagree on the document, BM25 must reach
    ``min_bm25_disagree``; without it, the BM25 margin over the next document must reach
    ``min_bm25_margin``."""

    min_bm25: float
    max_unknown: float
    min_bm25_margin: float = 0.0
    min_bm25_disagree: float = 0.0

    def accepts(self, evidence: Evidence) -> bool:
        """True when the evidence is enough to answer."""
        if evidence.section is None or evidence.off_topic:
            return False
        if evidence.unknown > self.max_unknown or evidence.bm25 < self.min_bm25:
            return False
        if evidence.agree is None:
            return evidence.bm25_margin >= self.min_bm25_margin
        return evidence.agree or evidence.bm25 >= self.min_bm25_disagree


# Chosen on the tune split by `make eval` (scripts/eval.py prints the choice).
BM25_POLICY = Policy(min_bm25=4.0, max_unknown=0.7, min_bm25_margin=0.2)
FUSED_POLICY = Policy(min_bm25=4.0, max_unknown=0.5, min_bm25_disagree=9.0)


def unknown_share(question: str, vocabulary: frozenset[str]) -> float:
    """The share of the question's own strong words that no document word starts with
    (by stem) and no synonym phrase explains."""
    query = analyse(question)
    if not query.own:
        return 0.0

    def known(term: str) -> bool:
        if term in query.explained or term in vocabulary:
            return True
        cut = stem(term)
        return len(cut) >= 4 and any(word.startswith(cut) for word in vocabulary)

    return sum(not known(t) for t in query.own) / len(query.own)


class Retriever:
    """BM25 (always) fused with a semantic ranker (optional), and the abstention policy."""

    def __init__(
        self,
        index: KnowledgeIndex,
        semantic: SemanticIndex | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.index = index
        self.semantic = semantic
        self.policy = policy or (BM25_POLICY if semantic is None else FUSED_POLICY)

    @property
    def name(self) -> str:
        return "BM25" if self.semantic is None else f"BM25 + {self.semantic.encoder.name}"

    def _ranked(self, question: str) -> tuple[list[Hit], list[tuple[Section, float]], list[Hit]]:
        bm25 = self.index.search(question, limit=BM25_CANDIDATES)
        if self.semantic is None:
            return bm25, [], bm25
        cosines = self.semantic.similarities(question)
        fused: dict[Section, float] = {}
        for rank, hit in enumerate(bm25):
            fused[hit.section] = fused.get(hit.section, 0.0) + 1 / (RRF_K + rank + 1)
        for rank, (section, _) in enumerate(cosines):
            fused[section] = fused.get(section, 0.0) + 1 / (RRF_K + rank + 1)
        order = sorted(fused, key=lambda s: -fused[s])
        return bm25, cosines, [Hit(s, fused[s]) for s in order]

    def search(self, question: str, limit: int = 3) -> list[Hit]:
        """The best sections, best first (fused when there is a semantic ranker)."""
        return self._ranked(question)[2][:limit]

    def evidence(self, question: str) -> Evidence:
        """The best section and what supports answering from it."""
        off_topic = analyse(question).off_topic
        bm25, cosines, ranked = self._ranked(question)
        if not ranked:
            return Evidence(None, off_topic=off_topic)
        best = ranked[0].section
        score = next((h.score for h in bm25 if h.section == best), 0.0)
        runner_up = max((h.score for h in bm25 if h.section.slug != best.slug), default=0.0)
        margin = (score - runner_up) / score if score > 0 else 0.0
        unknown = unknown_share(question, self.index.vocabulary())
        if not cosines:
            return Evidence(best, score, margin, unknown, off_topic=off_topic)
        cosine = dict(cosines)[best]
        other = max((c for s, c in cosines if s.slug != best.slug), default=0.0)
        agree = bool(bm25) and bm25[0].section.slug == cosines[0][0].slug == best.slug
        return Evidence(best, score, margin, unknown, cosine, cosine - other, agree, off_topic)

    def answer(self, question: str) -> Hit | None:
        """The section to answer from, or None when the evidence is not enough."""
        evidence = self.evidence(question)
        if evidence.section is None or not self.policy.accepts(evidence):
            return None
        return Hit(evidence.section, evidence.bm25)
