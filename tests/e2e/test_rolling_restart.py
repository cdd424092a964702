"""A rolling restart of the `rasa run` processes loses nothing and answers nothing twice.

As Kubernetes or `docker compose up` replaces them on a new version: behind the ingress
and a round-robin proxy, on a real redis-server, each `rasa run` process in turn gets
SIGTERM (it stops accepting, finishes what it acknowledged, exits) once its successor is
ready in the proxy (a Deployment's rolling update: maxSurge 1, maxUnavailable 0), while
Meta keeps delivering a steady stream of messages to the ingress. Every message is
answered exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from scripts.endpoints import write_redis_endpoints
from tests.e2e.conftest import E2E_SECRETS
from tests.e2e.test_cloud_e2e import text_webhook
from tests.e2e.test_scale_out import (
    CONVERSATION,
    deliver_until_accepted,
    metric,
    replies,
)
from tests.fakes.graph import FakeGraph, running_graph
from tests.support.proxy import running_proxy
from tests.support.redis import redis_server
from tests.support.stack import ROOT, Proc, free_port, start_ingress, start_rasa, wait_ready
from tests.support.threaded import InThread

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
SENDERS = [f"55619777{i:05d}" for i in range(12)]
RATE = 2.0  # messages per second, spread over the senders


class SteadyStream:
    """Meta delivering ``RATE`` messages a second to the ingress until stopped: message
    ``n`` comes from ``SENDERS[n % 12]`` and is the next line of its conversation, each
    delivered again until it is answered 200 (as Meta does)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent: list[tuple[str, str]] = []  # (sender, expected reply kind)
        self.retried = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meta", daemon=True)

    def __enter__(self) -> SteadyStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop delivering new messages once the one in hand is accepted."""
        self._stop.set()
        self._thread.join(timeout=120)
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            self._deliver()
        except BaseException as error:  # e.g. a message never accepted: the test fails
            self.error = error

    def _deliver(self) -> None:
        n = 0
        start = time.monotonic()
        while not self._stop.is_set():
            sender = SENDERS[n % len(SENDERS)]
            text, kind = CONVERSATION[(n // len(SENDERS)) % len(CONVERSATION)]
            payload = text_webhook(f"wamid.ROLL{n}", text, sender)
            self.retried += deliver_until_accepted(self.url, payload) - 1
            self.sent.append((sender, kind))
            n += 1
            self._stop.wait(max(0.0, start + n / RATE - time.monotonic()))


def replace(old: Proc, new: Proc, upstreams: list[str], graph: FakeGraph) -> None:
    """Put ``new`` in ``old``'s place in the proxy once it is ready, then SIGTERM ``old``
    and wait while it drains (Kubernetes' rolling update: the new pod is ready before the
    old one is stopped)."""
    wait_ready(new)
    # WhatsApp slow for a moment, so ``old`` holds acknowledged, unanswered messages when
    # SIGTERM comes: the drain has work to finish, not an idle process to stop.
    graph.down_until = time.monotonic() + 4
    time.sleep(1.5)
    upstreams[upstreams.index(old.url)] = new.url
    old.popen.send_signal(signal.SIGTERM)
    try:
        code = old.popen.wait(timeout=60)  # drain (25 s) + Sanic's graceful close (15 s)
    except subprocess.TimeoutExpired:
        old.popen.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: every thread's stack
        old.popen.wait(timeout=10)
        raise AssertionError(f"{old.name} hung after SIGTERM:\n{old.log_text()[-6000:]}") from None
    assert code == 0, old.log_text()[-3000:]
    assert "Shutdown: finishing" in old.log_text()


def test_replacing_each_rasa_process_under_a_steady_stream_answers_every_message_once(
    trained_model: Path, tmp_path: Path
) -> None:
    fake = FakeGraph(token=E2E_SECRETS["WPP_AUTHORIZATION_TOKEN"])
    with redis_server() as redis, InThread(lambda: running_graph(fake)) as graph:
        endpoints = write_redis_endpoints(tmp_path / "endpoints.yml", redis.url, None)
        env = {
            **E2E_SECRETS,
            "WPP_API_BASE_URL": graph.url,
            "REDIS_URL": redis.url,
            "WPP_TURN_THREAD": "false",  # as deployed behind the ingress
            "WPP_LEASE_SECONDS": "3",
            "TICKET_LOCK_LIFETIME": "10",
            "PYTHONFAULTHANDLER": "1",  # a process that hangs on SIGTERM shows where
        }
        generation = iter(range(100))

        def start_new() -> Proc:
            return start_rasa(
                free_port(),
                env,
                credentials=ROOT / "credentials.yml",
                endpoints=endpoints,
                model=trained_model,
                name=f"rasa-rolling-{next(generation)}",
                wait=False,
            )

        olds = [start_new(), start_new()]
        news: list[Proc] = []
        try:
            for rasa in olds:
                wait_ready(rasa)
            with (
                InThread(lambda: running_proxy([r.url for r in olds])) as proxy,
                start_ingress(free_port(), proxy.url, env, name="ingress-rolling") as front,
                SteadyStream(front.url) as stream,
            ):
                # The new version loads its model while the old one serves the stream.
                news = [start_new(), start_new()]
                for old, new in zip(olds, news, strict=True):
                    replace(old, new, proxy.upstreams, graph)
                    time.sleep(4)  # the new process takes its share before the next
                stream.stop()
                expected = {s: Counter(k for who, k in stream.sent if who == s) for s in SENDERS}
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    if all(Counter(replies(graph, s)) >= expected[s] for s in SENDERS):
                        break
                    time.sleep(0.5)
                time.sleep(3)  # and nothing more arrives afterwards
                received = {s: Counter(replies(graph, s)) for s in SENDERS}
                relayed = metric(front, "whatsapp_messages_relayed_total")
                handled_by_new = [metric(r, "whatsapp_messages_handled_total") for r in news]
        finally:
            for rasa in [*olds, *news]:
                rasa.stop()
    assert len(stream.sent) >= 60, "the stream should have run through both restarts"
    assert received == expected  # every message answered, none twice
    assert relayed == len(stream.sent)
    assert all(count > 0 for count in handled_by_new), handled_by_new
