"""A full-text index of Markdown documents: SQLite FTS5, BM25 ranking, accents folded.

Each document is ``# Title`` followed by ``## Section`` blocks; each section is indexed on
its own (with the document title) and the best section is the answer.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from knowledge.vocabulary import OFF_TOPIC, STOP_WORDS, SYNONYMS, WEAK_WORDS

SOURCE_BASE_URL = "https://www.novaaurora.example.gov.br/servicos/"

TOKEN_RE = re.compile(r"\w+", re.UNICODE)


def fold(text: str) -> str:
    """Lower-case and strip accents (as the FTS5 tokenizer does)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def query_terms(question: str) -> list[str]:
    """The words of a question worth searching for, accent-folded, without stop words."""
    terms = []
    for word in TOKEN_RE.findall(fold(question)):
        if len(word) < 2 or word in STOP_WORDS or (word.isdigit() and len(word) < 3):
            continue
        if word not in terms:
            terms.append(word)
    return terms


def _contains(folded_words: str, phrase: str) -> bool:
    return f" {phrase} " in folded_words


def _spaced(question: str) -> str:
    return " " + " ".join(TOKEN_RE.findall(fold(question))) + " "


@dataclass(frozen=True)
class Query:
    """A question as search terms: ``strong`` ones can decide a match, ``weak`` ones only
    add to it; ``off_topic`` names the subject of another government or city, if any."""

    strong: tuple[str, ...]
    weak: tuple[str, ...]
    off_topic: str | None = None
    # The question's own strong words, and those a synonym phrase stood for.
    own: tuple[str, ...] = ()
    explained: frozenset[str] = frozenset()


def analyse(question: str) -> Query:
    """Split a question into strong and weak terms, with the document words its citizen
    words stand for (``SYNONYMS``) added as strong terms."""
    spaced = _spaced(question)
    strong: list[str] = []
    weak: list[str] = []
    for term in query_terms(question):
        (weak if term in WEAK_WORDS else strong).append(term)
    own = tuple(strong)
    explained: set[str] = set()
    for phrase, words in SYNONYMS.items():
        if _contains(spaced, phrase):
            explained.update(phrase.split())
            strong.extend(w for w in words.split() if w not in strong)
    off_topic = next((p for p in sorted(OFF_TOPIC) if _contains(spaced, p)), None)
    weak_only = tuple(w for w in weak if w not in strong)
    return Query(tuple(strong), weak_only, off_topic, own, frozenset(explained))


def stem(term: str) -> str:
    """A crude Portuguese stem: no plural ``s``; long words lose their last two letters."""
    cut = term[:-1] if len(term) > 4 and term.endswith("s") else term
    return cut[: max(4, len(cut) - 2)] if len(cut) > 6 else cut


def _fts_term(term: str) -> str:
    cut = stem(term)
    return f'"{cut}"*' if len(cut) >= 4 else f'"{cut}"'


def fts_query(terms: list[str], weak: list[str] | None = None) -> str:
    """An FTS5 query: a row must contain one of ``terms``; ``weak`` terms add to its score.

    Each term is quoted (so user text is never FTS syntax), and words longer than 4 letters
    match by prefix of their stem (plural/gender). The strong terms appear twice, so in the
    BM25 sum a weak word weighs half as much as a strong one."""
    strong = " OR ".join(_fts_term(t) for t in terms)
    if not weak:
        return strong
    return f"({strong}) AND ({strong} OR {' OR '.join(_fts_term(t) for t in weak)})"


@dataclass(frozen=True)
class Section:
    slug: str
    doc_title: str
    title: str
    text: str


@dataclass(frozen=True)
class Hit:
    section: Section
    score: float

    @property
    def url(self) -> str:
        return SOURCE_BASE_URL + self.section.slug


def parse_document(slug: str, markdown: str) -> list[Section]:
    """Split a Markdown document into its ``##`` sections."""
    doc_title = slug
    sections: list[Section] = []
    current_title: str | None = None
    lines: list[str] = []

    def flush() -> None:
        text = "\n".join(lines).strip()
        if current_title is not None and text:
            sections.append(Section(slug, doc_title, current_title, text))

    for line in markdown.splitlines():
        if line.startswith("# "):
            doc_title = line[2:].strip()
        elif line.startswith("## "):
            flush()
            current_title, lines = line[3:].strip(), []
        else:
            lines.append(line)
    flush()
    return sections


class KnowledgeIndex:
    """The index of a folder of documents, rebuilt when a document changes.

    Args:
        docs_dir: the folder of ``*.md`` documents.

    Whether to answer from the best section is decided by ``knowledge.retriever``.
    """

    def __init__(self, docs_dir: Path) -> None:
        self.docs_dir = docs_dir
        self._lock = threading.Lock()
        self._fingerprint = ""
        self._vocabulary: frozenset[str] = frozenset()
        self._vocabulary_of = ""
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self.refresh()

    def _current_fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path in sorted(self.docs_dir.glob("*.md")):
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_mtime_ns}:{stat.st_size};".encode())
        return digest.hexdigest()

    def refresh(self) -> bool:
        """Rebuild the index if the documents changed; True when it was rebuilt."""
        fingerprint = self._current_fingerprint()
        if fingerprint == self._fingerprint:
            return False
        with self._lock:
            db = self._db
            db.execute("DROP TABLE IF EXISTS sections")
            db.execute(
                "CREATE VIRTUAL TABLE sections USING fts5("
                "slug UNINDEXED, doc_title, title, text, "
                "tokenize = 'unicode61 remove_diacritics 2')"
            )
            rows = []
            for path in sorted(self.docs_dir.glob("*.md")):
                for section in parse_document(path.stem, path.read_text(encoding="utf-8")):
                    rows.append((section.slug, section.doc_title, section.title, section.text))
            db.executemany("INSERT INTO sections VALUES (?, ?, ?, ?)", rows)
            db.commit()
            self._fingerprint = fingerprint
        return True

    @property
    def size(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM sections").fetchone()[0])

    def sections(self) -> list[Section]:
        """Every indexed section, in index order."""
        self.refresh()
        with self._lock:
            rows = self._db.execute("SELECT slug, doc_title, title, text FROM sections").fetchall()
        return [Section(*row) for row in rows]

    def vocabulary(self) -> frozenset[str]:
        """Every accent-folded word of the documents (titles included)."""
        self.refresh()
        if self._vocabulary_of != self._fingerprint:
            words: set[str] = set()
            for section in self.sections():
                text = f"{section.doc_title} {section.title} {section.text}"
                words.update(TOKEN_RE.findall(fold(text)))
            self._vocabulary, self._vocabulary_of = frozenset(words), self._fingerprint
        return self._vocabulary

    @property
    def fingerprint(self) -> str:
        """Changes whenever the documents change (after ``refresh``)."""
        return self._fingerprint

    def search(self, question: str, limit: int = 3) -> list[Hit]:
        """The best sections for ``question`` by BM25, best first (may be empty)."""
        self.refresh()
        query = analyse(question)
        if not query.strong:
            return []
        with self._lock:
            rows = self._db.execute(
                # Titles weigh more than body text: they name what a section is about.
                "SELECT slug, doc_title, title, text, -bm25(sections, 0, 4.0, 3.0, 1.0) AS score "
                "FROM sections WHERE sections MATCH ? ORDER BY score DESC LIMIT ?",
                (fts_query(list(query.strong), list(query.weak)), limit),
            ).fetchall()
        return [Hit(Section(r[0], r[1], r[2], r[3]), float(r[4])) for r in rows]
