"""The knowledge API over HTTP (aiohttp): ``POST /ask`` and ``GET /health``.

Contract: ``POST /ask {"question", "sender_id"?, "language"?}`` ▸ ``200 {"answer", "sources":
[{"title", "url"}], "score"}``, or ``404 {"answer": "", "sources": [], "score": 0}`` when
the evidence is not enough to answer (``knowledge.retriever.Policy``). Bad requests ▸ 400
with a reason.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from knowledge.index import KnowledgeIndex
from knowledge.retriever import BM25_POLICY, FUSED_POLICY, Retriever
from knowledge.semantic import DEFAULT_ENCODER, SemanticIndex, load_encoder

logger = logging.getLogger(__name__)
MAX_QUESTION_CHARS = 1000
RETRIEVER_KEY = web.AppKey("retriever", Retriever)


def bad_request(reason: str) -> web.Response:
    logger.warning("Bad knowledge request: %s", reason)
    return web.json_response({"error": reason}, status=400)


async def ask(request: web.Request) -> web.Response:
    try:
        payload: Any = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return bad_request("body must be JSON")
    if not isinstance(payload, dict):
        return bad_request("body must be a JSON object")
    question = payload.get("question")
    if not isinstance(question, str) or not question.strip():
        return bad_request("'question' must be a non-empty string")
    if len(question) > MAX_QUESTION_CHARS:
        return bad_request(f"'question' is longer than {MAX_QUESTION_CHARS} characters")
    hit = request.app[RETRIEVER_KEY].answer(question)
    if hit is None:
        return web.json_response({"answer": "", "sources": [], "score": 0.0}, status=404)
    section = hit.section
    return web.json_response(
        {
            "answer": f"*{section.title}*\n{section.text}",
            "sources": [{"title": section.doc_title, "url": hit.url}],
            "score": round(hit.score, 3),
        }
    )


async def health(request: web.Request) -> web.Response:
    retriever = request.app[RETRIEVER_KEY]
    size = retriever.index.size
    return web.json_response({"ok": size > 0, "sections": size, "ranker": retriever.name})


def create_app(
    docs_dir: Path, min_score: float | None = None, encoder: str = DEFAULT_ENCODER
) -> web.Application:
    """The knowledge API over the documents of ``docs_dir``.

    Args:
        docs_dir: the folder of ``*.md`` documents.
        min_score: overrides the policy's BM25 floor (``KNOWLEDGE_MIN_SCORE``).
        encoder: the semantic encoder fused with BM25 (``KNOWLEDGE_ENCODER``); ``none``
            (the default, see the README's evaluation) ranks with BM25 alone.
    """
    app = web.Application(client_max_size=64 * 1024)
    index = KnowledgeIndex(docs_dir)
    loaded = load_encoder(encoder)
    policy = BM25_POLICY if loaded is None else FUSED_POLICY
    if min_score is not None:
        policy = dataclasses.replace(policy, min_bm25=min_score)
    retriever = Retriever(index, SemanticIndex(index, loaded) if loaded else None, policy)
    logger.info("Knowledge service: %d sections, ranker %s", index.size, retriever.name)
    app[RETRIEVER_KEY] = retriever
    app.router.add_post("/ask", ask)
    app.router.add_get("/health", health)
    return app
