"""Handoff across two real `rasa run` processes on one real redis-server, with the real
action server and the trained model: the pause lives in Rasa's Redis tracker store, the
dedup and journal in Redis, so whichever process a webhook reaches does the same thing.

A citizen asks for a person (NLU ▸ action_handoff ▸ the channel opens the fake Chatwoot's
conversation and the bot says it is transferring, with the place in the queue), then
writes alternately to both processes at a person's pace, one message redelivered to the
other process: the fake Chatwoot receives each message once, in order. The agent's
replies, one Chatwoot delivery repeated to the other process, reach WhatsApp once, in
order.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.addons.whatsapp.handoff.webhook import chatwoot_signature
from scripts.endpoints import write_redis_endpoints
from tests.e2e.conftest import E2E_SECRETS
from tests.e2e.test_cloud_e2e import text_webhook
from tests.e2e.test_scale_out import deliver
from tests.fakes.chatwoot import FakeChatwoot, running_chatwoot
from tests.fakes.graph import FakeGraph, running_graph
from tests.support.redis import redis_server
from tests.support.stack import (
    ROOT,
    Proc,
    free_port,
    start_action_server,
    start_rasa,
    wait_ready,
)
from tests.support.threaded import InThread

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
CITIZEN = "5561966660001"
SECRET = "e2e-chatwoot-url-secret"
SIGNING = "e2e-chatwoot-signing"
RESPONSES = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))["responses"]


@dataclass
class Cluster:
    rasas: list[Proc]
    graph: FakeGraph
    chatwoot: FakeChatwoot
    agent: InThread[FakeChatwoot]  # runs the fake agent's actions on the fake's loop

    def hook_url(self, rasa: Proc) -> str:
        return f"{rasa.url}/webhooks/whatsapp/chatwoot/{SECRET}"


def eventually(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


def sent_texts(graph: FakeGraph) -> list[str]:
    return [
        body["text"]["body"]
        for body in list(graph.sent)
        if str(body.get("to", "")).lstrip("+") == CITIZEN and body.get("type") == "text"
    ]


@pytest.fixture(scope="module")
def cluster(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    graph_fake = FakeGraph(token=E2E_SECRETS["WPP_AUTHORIZATION_TOKEN"])
    ports = [free_port(), free_port()]
    chatwoot_fake = FakeChatwoot(
        token="test-chatwoot-token",
        webhook_url=f"http://127.0.0.1:{ports[0]}/webhooks/whatsapp/chatwoot/{SECRET}",
        signing_secret=SIGNING,
    )
    agent = InThread(lambda: running_chatwoot(chatwoot_fake))
    action_port = free_port()
    with (
        redis_server() as redis,
        InThread(lambda: running_graph(graph_fake)) as graph,
        agent as chatwoot,
    ):
        actions = start_action_server(action_port, {"HANDOFF_OFFICE_HOURS": ""})
        endpoints = tmp_path_factory.mktemp("handoff") / "endpoints.yml"
        write_redis_endpoints(endpoints, redis.url, f"http://127.0.0.1:{action_port}/webhook")
        env = {
            **E2E_SECRETS,
            "WPP_API_BASE_URL": graph.url,
            "REDIS_URL": redis.url,
            "CHATWOOT_URL": chatwoot.url,
            "CHATWOOT_ACCOUNT_ID": str(chatwoot.account_id),
            "CHATWOOT_INBOX_ID": str(chatwoot.inbox_id),
            "CHATWOOT_API_TOKEN": chatwoot.token,
            "CHATWOOT_WEBHOOK_SECRET": SECRET,
            "CHATWOOT_SIGNING_SECRET": SIGNING,
        }
        rasas = [
            start_rasa(
                port,
                env,
                credentials=ROOT / "credentials.yml",
                endpoints=endpoints,
                model=trained_model,
                name=f"rasa-handoff-{i}",
                wait=False,
            )
            for i, port in enumerate(ports)
        ]
        try:
            for rasa in rasas:
                wait_ready(rasa)
            yield Cluster(rasas, graph, chatwoot, agent)
        finally:
            for proc in [*rasas, actions]:
                proc.stop()


def incoming(chatwoot: FakeChatwoot) -> list[str]:
    (conversation,) = chatwoot.conversations.values()
    return [m["content"] for m in conversation["messages"] if m["message_type"] == "incoming"]


def test_a_handoff_spread_over_two_processes_reaches_chatwoot_and_whatsapp_in_order_once(
    cluster: Cluster,
) -> None:
    first, second = cluster.rasas
    ask = text_webhook("wamid.HANDOFF.ask", "quero falar com um atendente", CITIZEN)
    assert deliver(first.url, ask)[0] == 200
    transferring = RESPONSES["utter_handoff_transferring"][2]["text"].replace(
        "{handoff_position}", "1"
    )
    eventually(lambda: sent_texts(cluster.graph) == [transferring], 90, "the transfer message")
    (conversation,) = cluster.chatwoot.conversations

    # The citizen writes while handed off, at a person's pace (each message once the one
    # before reached the agent: replicas keep Rasa's ticket order, not the order of two
    # deliveries a few milliseconds apart), alternately to each process; Meta redelivers
    # the third message to the other process at once.
    words = ["primeira", "segunda", "terceira", "quarta", "quinta", "sexta"]
    for i, text in enumerate(words):
        payload = text_webhook(f"wamid.HANDOFF.{i}", text, CITIZEN)
        assert deliver(cluster.rasas[i % 2].url, payload)[0] == 200
        if i == 2:
            assert deliver(cluster.rasas[(i + 1) % 2].url, payload)[0] == 200
        eventually(lambda n=i: len(incoming(cluster.chatwoot)) > n, 30, f"message {i} forwarded")
    time.sleep(2)  # and nothing more arrives
    assert incoming(cluster.chatwoot) == words
    assert sent_texts(cluster.graph) == [transferring]  # the bot stayed quiet

    # The agent answers; Chatwoot repeats one delivery, to the other process.
    replies = ["Olá, sou a Ana.", "Pode me dizer o endereço?", "Obrigada!"]
    for n, reply in enumerate(replies):
        cluster.agent.call(cluster.chatwoot.agent_reply(conversation, reply))
        if n == 1:
            cluster.agent.call(cluster.chatwoot.settle())
            body, _ = cluster.chatwoot.deliveries[-1]
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Chatwoot-Timestamp": stamp,
                "X-Chatwoot-Signature": chatwoot_signature(SIGNING, stamp, body),
            }
            request = urllib.request.Request(
                cluster.hook_url(second), data=body, headers=headers, method="POST"
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert (answer.status, json.loads(answer.read())) == (200, {"status": "ok"})
    expected = [transferring, *replies]
    eventually(lambda: len(sent_texts(cluster.graph)) >= len(expected), 60, "agent replies")
    time.sleep(2)
    assert sent_texts(cluster.graph) == expected
