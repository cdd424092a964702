"""A compressed-body bomb against a real ingress process: refused on its header, unread.

aiohttp decompresses a request body as it reads it, before any size or signature check:
one unsigned 204 KB gzip body took the ingress from 35 MiB to 434 MiB. Meta and Serpro
never compress, so any ``Content-Encoding`` is refused (415) before the body is read.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import E2E_SECRETS
from tests.support.hostile import gzip_bomb
from tests.support.stack import ROOT, Proc, free_port, start_ingress

pytestmark = pytest.mark.e2e

BOMB_EXPANDED_MIB = 256


def memory_kib(proc: Proc) -> dict[str, int]:
    """The process's resident set now (VmRSS) and at its peak (VmHWM), in KiB."""
    status = Path(f"/proc/{proc.popen.pid}/status").read_text(encoding="ascii")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def post(proc: Proc, body: bytes, headers: dict[str, str]) -> tuple[int, object]:
    connection = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=30)
    try:
        connection.request("POST", "/webhooks/whatsapp/webhook", body=body, headers=headers)
        answer = connection.getresponse()
        raw = answer.read()
        try:
            return answer.status, json.loads(raw)
        except ValueError:
            return answer.status, raw[:200]
    finally:
        connection.close()


@pytest.fixture(scope="module")
def ingress() -> Iterator[Proc]:
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing is relayed in these tests
    with start_ingress(
        free_port(),
        unreachable,
        E2E_SECRETS,
        credentials=ROOT / "credentials.yml",
        name="ingress-bombs",
    ) as proc:
        yield proc


def test_gzip_bombs_get_415_and_the_ingress_memory_stays_flat(ingress: Proc) -> None:
    bomb = gzip_bomb(BOMB_EXPANDED_MIB)
    assert len(bomb) < 512 * 1024  # what the attacker sends
    before = memory_kib(ingress)
    answers = [
        post(ingress, bomb, {"Content-Type": "application/json", "Content-Encoding": encoding})
        for encoding in ("gzip", "deflate", "gzip", "br")
    ]
    after = memory_kib(ingress)
    assert answers == [(415, {"error": "content_encoding_refused"})] * 4, (answers, before, after)
    # A single decompressed bomb is 256 MiB; allow the noise of a few buffers.
    assert after["VmHWM"] - before["VmHWM"] < 32 * 1024, (before, after)
    assert after["VmRSS"] - before["VmRSS"] < 32 * 1024, (before, after)
    health = http.client.HTTPConnection("127.0.0.1", ingress.port, timeout=10)
    health.request("GET", "/webhooks/whatsapp/health")
    assert health.getresponse().status == 200
    health.close()
    assert "Webhook refused (415 content_encoding_refused)" in ingress.log_text()
