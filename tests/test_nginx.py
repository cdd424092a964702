"""deploy/nginx.conf run by a real nginx in front of a tiny upstream: the public surface.

Only the upstream host names and the ports are replaced (compose's Docker DNS names by
loopback addresses); every location, limit and log format is the file's own.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.stack import free_port, wait_for_tcp
from tests.support.system import require_program

ROOT = Path(__file__).resolve().parents[1]
CONF = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
SECRET = "s3rpr0-t0ken-never-logged"


@dataclass
class Upstream:
    """An HTTP server that answers 200 ``<name> <path>`` and remembers every request."""

    name: str
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, body size
    server: ThreadingHTTPServer | None = None
    # A request with "hold" in its path is answered once this is set (the ingress holding
    # a refusal, or slow).
    release: threading.Event = field(default_factory=threading.Event)

    def start(self) -> int:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(size)
                upstream.seen.append((self.command, self.path, size))
                if "hold" in self.path:
                    upstream.release.wait(30)
                body = f"{upstream.name} {self.path}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.server.server_address[1]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class Proxy:
    public: int
    internal: int
    webhook: Upstream
    rasa: Upstream
    access_log: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        port: int | None = None,
    ) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", port or self.public, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", errors="replace")
        finally:
            connection.close()


def local_conf(public: int, internal: int, webhook: int, rasa: int, log: Path) -> str:
    """deploy/nginx.conf with loopback upstreams and free ports, nothing else changed."""
    text = re.sub(r"^\s*resolver .*$", "", CONF, flags=re.M)  # addresses need no DNS
    replacements = {
        "listen 8080;": f"listen 127.0.0.1:{public};",
        "listen 8081;": f"listen 127.0.0.1:{internal};",
        "http://webhook:5006": f"http://127.0.0.1:{webhook}",
        "http://rasa:5005": f"http://127.0.0.1:{rasa}",
        "/var/log/nginx/access.log": str(log),
    }
    for old, new in replacements.items():
        assert old in text, f"deploy/nginx.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    nginx = require_program("nginx", "nginx-light")
    work = tmp_path_factory.mktemp("nginx")
    webhook, rasa = Upstream("webhook"), Upstream("rasa")
    public, internal = free_port(), free_port()
    log = work / "access.log"
    (work / "site.conf").write_text(
        local_conf(public, internal, webhook.start(), rasa.start(), log), encoding="utf-8"
    )
    temp = "".join(
        f"    {kind}_temp_path {work}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # Started as root, nginx's workers would run as nobody, who cannot enter pytest's
    # private temp dir to buffer large bodies: keep them as the user running the test.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (work / "nginx.conf").write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {work}/nginx.pid;\n"
        f"error_log {work}/error.log;\nevents {{}}\n"
        f"http {{\n    access_log off;\n{temp}    include {work}/site.conf;\n}}\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [nginx, "-p", str(work), "-c", str(work / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_tcp("127.0.0.1", public, 10)
        yield Proxy(public, internal, webhook, rasa, log)
    finally:
        process.terminate()
        process.wait(10)
        webhook.stop()
        rasa.stop()


def test_the_webhook_reaches_the_ingress_with_its_query_string(proxy: Proxy) -> None:
    path = f"/webhooks/whatsapp/webhook?token={SECRET}"
    assert proxy.request("POST", path, b'{"entry": []}') == (200, f"webhook {path}")
    verify = "/webhooks/whatsapp/webhook?hub.mode=subscribe&hub.verify_token=v3rify&hub.challenge=7"
    assert proxy.request("GET", verify) == (200, f"webhook {verify}")
    assert proxy.request("GET", "/webhooks/whatsapp/health") == (
        200,
        "webhook /webhooks/whatsapp/health",
    )


def test_the_access_log_never_records_a_query_string(proxy: Proxy) -> None:
    proxy.request("POST", f"/webhooks/whatsapp/webhook?token={SECRET}", b"{}")
    proxy.request("GET", "/webhooks/whatsapp/webhook?hub.verify_token=v3rify")
    proxy.request("GET", f"/elsewhere?token={SECRET}")
    text = proxy.access_log.read_text(encoding="utf-8")
    assert '"POST /webhooks/whatsapp/webhook HTTP/1.1" 200' in text
    assert '"GET /elsewhere HTTP/1.1" 404' in text
    assert SECRET not in text and "v3rify" not in text and "?" not in text


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/webhooks/whatsapp/",
        "/webhooks/whatsapp/metrics",
        "/webhooks/whatsapp/relay",
        "/webhooks/whatsapp/webhook/extra",
        "/webhooks/rest/webhook",
        "/conversations/5561988880001/tracker",
        "/model/parse",
        "/status",
    ],
)
def test_every_other_public_path_is_404_and_reaches_nothing(proxy: Proxy, path: str) -> None:
    before = len(proxy.webhook.seen) + len(proxy.rasa.seen)
    for method in ("GET", "POST"):
        status, _ = proxy.request(method, path, b"{}" if method == "POST" else None)
        assert status == 404
    assert len(proxy.webhook.seen) + len(proxy.rasa.seen) == before


def test_bodies_up_to_3_mb_pass_and_bigger_ones_are_refused(proxy: Proxy) -> None:
    path = "/webhooks/whatsapp/webhook"
    assert proxy.request("POST", path, b"x" * (3 * 1024 * 1024))[0] == 200
    assert proxy.webhook.seen[-1] == ("POST", path, 3 * 1024 * 1024)
    assert proxy.request("POST", path, b"x" * (3 * 1024 * 1024 + 1))[0] == 413


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "identity"])
def test_any_content_encoding_on_the_webhook_is_refused(proxy: Proxy, encoding: str) -> None:
    before = len(proxy.webhook.seen)
    status, _ = proxy.request(
        "POST", "/webhooks/whatsapp/webhook", b"\x1f\x8b...", {"Content-Encoding": encoding}
    )
    assert status == 415
    assert len(proxy.webhook.seen) == before


def test_one_client_holds_at_most_64_webhook_requests_at_once(proxy: Proxy) -> None:
    limit = int(re.search(r"limit_conn webhook_clients (\d+);", CONF).group(1))  # type: ignore[union-attr]
    assert limit == 64
    path = "/webhooks/whatsapp/webhook?hold"
    before = len(proxy.webhook.seen)
    proxy.webhook.release.clear()
    with ThreadPoolExecutor(limit) as pool:
        held = [pool.submit(proxy.request, "POST", path, b"{}") for _ in range(limit)]
        deadline = time.monotonic() + 10
        while len(proxy.webhook.seen) - before < limit and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(proxy.webhook.seen) - before == limit  # all 64 reached the ingress
        assert proxy.request("POST", path, b"{}")[0] == 429  # the 65th, at once, by nginx
        assert len(proxy.webhook.seen) - before == limit
        proxy.webhook.release.set()
        assert [f.result()[0] for f in held] == [200] * limit
    assert proxy.request("POST", path, b"{}")[0] == 200  # released: the client is served again


def test_metrics_and_the_relay_are_on_the_internal_port_only(proxy: Proxy) -> None:
    internal = proxy.internal
    assert proxy.request("GET", "/webhooks/whatsapp/metrics", port=internal) == (
        200,
        "webhook /webhooks/whatsapp/metrics",
    )
    assert proxy.request("POST", "/webhooks/whatsapp/relay", b"{}", port=internal) == (
        200,
        "rasa /webhooks/whatsapp/relay",
    )
    for path in ("/", "/webhooks/whatsapp/webhook", "/conversations/x/tracker"):
        assert proxy.request("GET", path, port=internal)[0] == 404
