"""The embedded knowledge service over HTTP."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from knowledge.service import create_app
from tests.support.stack import free_port

DOCS = Path(__file__).resolve().parents[1] / "knowledge" / "docs"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    runner = web.AppRunner(create_app(docs))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", docs
    finally:
        await runner.cleanup()


async def test_a_question_gets_the_best_section_with_its_document_as_source(
    service: tuple[str, Path],
) -> None:
    url, _ = service
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/ask",
            json={"question": "Como pago o IPTU atrasado?", "sender_id": "x", "language": "pt-BR"},
        ) as r,
    ):
        assert r.status == 200
        body = await r.json()
    assert body["answer"].startswith("*IPTU atrasado e parcelamento de dívida*\n")
    assert body["sources"] == [
        {
            "title": "IPTU — Imposto Predial e Territorial Urbano",
            "url": "https://www.novaaurora.example.gov.br/servicos/iptu",
        }
    ]
    assert body["score"] > 2


async def test_accents_are_folded(service: tuple[str, Path]) -> None:
    url, _ = service
    async with aiohttp.ClientSession() as http:
        answers = []
        for question in ("isenção de iptu para aposentado", "isencao de iptu para aposentado"):
            async with http.post(f"{url}/ask", json={"question": question}) as r:
                answers.append((await r.json())["answer"])
    assert answers[0] == answers[1] and "Isenção" in answers[0]


@pytest.mark.parametrize(
    "question",
    [
        "me conta uma piada",
        "xkcd qwerty zzz",
        '"NEAR(a b)" OR * - : ^',
        # Shares "imposto" with the IPTU document, but is the federal government's business.
        "como declaro imposto de renda",
        # Only the weak word "casa" in common with "Retirada de móveis e entulho em casa".
        "minha casa é bonita",
    ],
)
async def test_nonsense_and_query_syntax_get_404_not_an_error(
    service: tuple[str, Path], question: str
) -> None:
    url, _ = service
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/ask", json={"question": question}) as r,
    ):
        assert r.status == 404
        assert await r.json() == {"answer": "", "sources": [], "score": 0.0}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "body must be JSON"),
        (b'["a"]', "body must be a JSON object"),
        (b'{"sender_id": "x"}', "'question' must be a non-empty string"),
        (b'{"question": "   "}', "'question' must be a non-empty string"),
        (
            ('{"question": "' + "a" * 10_000 + '"}').encode(),
            "'question' is longer than 1000 characters",
        ),
    ],
)
async def test_bad_requests_get_400_with_a_reason(
    service: tuple[str, Path], body: bytes, reason: str
) -> None:
    url, _ = service
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/ask", data=body, headers={"Content-Type": "application/json"}) as r,
    ):
        assert r.status == 400
        assert await r.json() == {"error": reason}


async def test_the_index_is_rebuilt_when_a_document_changes(service: tuple[str, Path]) -> None:
    url, docs = service
    question = {"question": "quando abre o planetário?"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/ask", json=question) as r:
            assert r.status == 404
        new = docs / "planetario.md"
        new.write_text(
            "# Planetário municipal\n\n## Horário do planetário\n"
            "Aberto aos domingos, das 14h às 18h.\n",
            encoding="utf-8",
        )
        os.utime(new, (1, 1))
        async with http.post(f"{url}/ask", json=question) as r:
            assert r.status == 200
            assert (await r.json())["sources"][0]["url"].endswith("/planetario")
        async with http.get(f"{url}/health") as r:
            health = await r.json()
            assert health["ok"] is True and health["ranker"] == "BM25"
