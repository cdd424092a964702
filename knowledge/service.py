"""The knowledge API over HTTP (aiohttp): ``POST /ask`` and ``GET /health``.

Contract: ``POST /ask {"question", "sender_id"?, "language"?}`` ▸ ``200 {"answer", "sources":
[{"title", "url"}], "score"}``, or ``404 {"answer": "", "sources": [], "score": 0}`` when
nothing scores above the threshold. Bad requests ▸ 400 with a reason.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from knowledge.index import KnowledgeIndex

logger = logging.getLogger(__name__)
MAX_QUESTION_CHARS = 1000
INDEX_KEY = web.AppKey("index", KnowledgeIndex)


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
    hit = request.app[INDEX_KEY].answer(question)
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
    index = request.app[INDEX_KEY]
    return web.json_response({"ok": index.size > 0, "sections": index.size})


def create_app(docs_dir: Path, min_score: float = 4.0) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[INDEX_KEY] = KnowledgeIndex(docs_dir, min_score)
    app.router.add_post("/ask", ask)
    app.router.add_get("/health", health)
    return app
