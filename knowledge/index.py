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

SOURCE_BASE_URL = "https://www.novaaurora.example.gov.br/servicos/"

# Words too common in questions to tell documents apart (compared accent-folded).
STOP_WORDS = frozenset(
    [
        "a",
        "ao",
        "aos",
        "as",
        "ate",
        "com",
        "como",
        "da",
        "das",
        "de",
        "do",
        "dos",
        "e",
        "ela",
        "ele",
        "em",
        "entre",
        "era",
        "essa",
        "esse",
        "esta",
        "este",
        "eu",
        "foi",
        "for",
        "ha",
        "isso",
        "ja",
        "la",
        "lhe",
        "mais",
        "mas",
        "me",
        "meu",
        "minha",
        "muito",
        "na",
        "nas",
        "no",
        "nos",
        "nao",
        "o",
        "onde",
        "os",
        "ou",
        "para",
        "pela",
        "pelas",
        "pelo",
        "pelos",
        "por",
        "pra",
        "qual",
        "quais",
        "quando",
        "que",
        "quem",
        "se",
        "sem",
        "ser",
        "seu",
        "sua",
        "tem",
        "ter",
        "tenho",
        "um",
        "uma",
        "uns",
        "umas",
        "vc",
        "voce",
        "voces",
        "vou",
        "faz",
        "fazer",
        "faco",
        "preciso",
        "quero",
        "queria",
        "gostaria",
        "posso",
        "pode",
        "saber",
        "sobre",
        "tipo",
        "algum",
        "alguma",
        "aqui",
        "ai",
        "entao",
        "tambem",
        "so",
        "sim",
        "oi",
        "ola",
        "bom",
        "dia",
        "boa",
        "tarde",
        "noite",
        "prefeitura",
        "cidade",
        "nova",
        "aurora",
        "favor",
        "obrigado",
        "obrigada",
    ]
)
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


def fts_query(terms: list[str]) -> str:
    """An FTS5 query ORing the terms; each is quoted (so user text is never FTS syntax),
    and words longer than 4 letters match by prefix of their stem (plural/gender)."""
    parts = []
    for term in terms:
        stem = term[:-1] if len(term) > 4 and term.endswith("s") else term
        stem = stem[: max(4, len(stem) - 2)] if len(stem) > 6 else stem
        parts.append(f'"{stem}"*' if len(stem) >= 4 else f'"{stem}"')
    return " OR ".join(parts)


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
        min_score: BM25 score (higher is better) below which there is no answer.
    """

    def __init__(self, docs_dir: Path, min_score: float = 4.0) -> None:
        self.docs_dir = docs_dir
        self.min_score = min_score
        self._lock = threading.Lock()
        self._fingerprint = ""
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

    def search(self, question: str, limit: int = 3) -> list[Hit]:
        """The best sections for ``question``, best first (may be empty)."""
        self.refresh()
        terms = query_terms(question)
        if not terms:
            return []
        with self._lock:
            rows = self._db.execute(
                # Titles weigh more than body text: they name what a section is about.
                "SELECT slug, doc_title, title, text, -bm25(sections, 0, 4.0, 3.0, 1.0) AS score "
                "FROM sections WHERE sections MATCH ? ORDER BY score DESC LIMIT ?",
                (fts_query(terms), limit),
            ).fetchall()
        return [Hit(Section(r[0], r[1], r[2], r[3]), float(r[4])) for r in rows]

    def answer(self, question: str) -> Hit | None:
        """The best section if it scores at least ``min_score``."""
        hits = self.search(question, limit=1)
        return hits[0] if hits and hits[0].score >= self.min_score else None
