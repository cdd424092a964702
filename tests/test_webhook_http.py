"""The webhook over real HTTP, with the channel mounted the way Rasa mounts it."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import Any

import pytest

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.inbound.signature import sign
from bot.addons.whatsapp.logs import ThrottledLog
from bot.addons.whatsapp.outbound.messages import Text
from tests.channel_harness import APP_SECRET, SERPRO_TOKEN, VERIFY_TOKEN, FakeAgent, serve_channel
from tests.whatsapp_fixtures import fixture


def text_webhook(wamid: str, body: str, sender: str = "15550002222") -> dict[str, Any]:
    payload = copy.deepcopy(fixture("inbound_text"))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message.update({"id": wamid, "from": sender, "text": {"body": body}})
    payload["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = sender
    return payload


async def test_verification_handshake_echoes_the_challenge() -> None:
    async with serve_channel() as s:
        params = {
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        }
        ok = await s.http.get(f"{s.url}/webhooks/whatsapp/webhook", params=params)
        assert ok.status == 200 and await ok.text() == "1158201444"
        for bad in (
            {**params, "hub.verify_token": "wrong"},
            {**params, "hub.mode": "unsubscribe"},
            {},
        ):
            refused = await s.http.get(f"{s.url}/webhooks/whatsapp/webhook", params=bad)
            assert refused.status == 403


async def test_signature_missing_wrong_and_right(caplog: pytest.LogCaptureFixture) -> None:
    async with serve_channel() as s:
        payload = text_webhook("wamid.A", "oi")
        missing = await s.post(payload, signed=False)
        wrong = await s.post(
            payload, signed=False, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64}
        )
        assert (missing.status, wrong.status) == (401, 403)
        await s.settle()
        assert s.agent.messages == []
        assert "signature_missing" in caplog.text and "signature_invalid" in caplog.text
        right = await s.post(payload)
        assert right.status == 200
        await s.settle()
        assert [m.text for m in s.agent.messages] == ["oi"]


async def test_the_signature_is_checked_on_the_raw_bytes() -> None:
    recorded = json.loads(fixture("webhook_signature_example")["raw_body"])
    raw = fixture("webhook_signature_example")["raw_body"].encode()
    async with serve_channel(app_secret=fixture("webhook_signature_example")["app_secret"]) as s:
        header = {"X-Hub-Signature-256": fixture("webhook_signature_example")["header_value"]}
        assert (await s.post(None, signed=False, raw=raw, headers=header)).status == 200
        reserialised = json.dumps(recorded, indent=1).encode()  # same JSON, other bytes
        assert (await s.post(None, signed=False, raw=reserialised, headers=header)).status == 403


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (b"{not json", 400, "invalid_json"),
        (b'{"object": "page", "entry": []}', 400, "invalid_payload"),
        (b"[]", 400, "invalid_payload"),
        (
            b'{"object":"whatsapp_business_account","entry":[]}'
            + b" " * limits.WEBHOOK_BODY_MAX_BYTES,
            413,
            "body_too_large",
        ),
    ],
)
async def test_bad_bodies_get_a_clear_4xx(raw: bytes, status: int, reason: str) -> None:
    async with serve_channel() as s:
        answer = await s.post(None, raw=raw)
        assert answer.status == status
        assert (await answer.json()) == {"error": reason}
        assert s.channel.metrics.rejected_requests[reason] == 1


async def test_a_batch_of_several_entries_and_changes_is_handled_whole() -> None:
    async with serve_channel() as s:
        first = text_webhook("wamid.1", "um", "5561900000001")
        second = text_webhook("wamid.2", "dois", "5561900000002")
        status = fixture("status_read")["entry"][0]["changes"][0]
        first["entry"][0]["changes"].append(status)
        first["entry"].append(second["entry"][0])
        first["entry"][1]["changes"][0]["value"]["messages"].append(
            {
                "from": "5561900000002",
                "id": "wamid.3",
                "timestamp": "1",
                "type": "text",
                "text": {"body": "três"},
            }
        )
        answer = await s.post(first)
        assert answer.status == 200 and (await answer.json())["messages"] == 3
        await s.settle()
        assert sorted(m.text for m in s.agent.messages) == ["dois", "três", "um"]
        assert s.channel.metrics.statuses["read"] == 1


async def test_statuses_never_reach_the_bot_and_failures_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serve_channel() as s:
        for name in ("status_sent", "status_delivered", "status_read", "status_failed_131047"):
            assert (await s.post(fixture(name))).status == 200
        await s.settle()
        assert s.agent.messages == []
        assert dict(s.channel.metrics.statuses) == {
            "sent": 1,
            "delivered": 1,
            "read": 1,
            "failed": 1,
        }
        assert s.channel.metrics.failures["131047"] == 1
        assert "131047" in caplog.text and "15550002222" not in caplog.text


async def test_sequential_duplicates_are_handled_once() -> None:
    async with serve_channel() as s:
        payload = text_webhook("wamid.DUP", "oi")
        for _ in range(3):
            assert (await s.post(payload)).status == 200
        await s.settle()
        assert [m.message_id for m in s.agent.messages] == ["wamid.DUP"]
        assert s.channel.metrics.duplicates_dropped == 2
        assert len(s.provider.sent) == 1


async def test_concurrent_duplicates_are_handled_once() -> None:
    async with serve_channel() as s:
        payload = text_webhook("wamid.SAME", "oi")
        answers = await asyncio.gather(*(s.post(payload) for _ in range(10)))
        assert {a.status for a in answers} == {200}
        await s.settle()
        assert len(s.agent.messages) == 1


async def test_one_senders_messages_are_handled_in_order_others_concurrently() -> None:
    agent = FakeAgent(delay=0.02)
    async with serve_channel(agent) as s:
        posts = []
        for i in range(8):
            for sender in ("5561911111111", "5561922222222", "5561933333333"):
                posts.append(text_webhook(f"wamid.{sender}.{i}", f"{sender}:{i}", sender))
        for payload in posts:  # arrival order per sender is 0..7
            assert (await s.post(payload)).status == 200
        await s.settle()
        assert agent.overlaps == 0
        assert agent.peak == 3  # the three senders' turns ran at the same time
        for sender in ("5561911111111", "5561922222222", "5561933333333"):
            texts = [m.text for m in agent.messages if m.sender_id == sender]
            assert texts == [f"{sender}:{i}" for i in range(8)]
            replies = [m.body for to, m in s.provider.sent if to == sender and isinstance(m, Text)]
            assert replies == [f"eco: {sender}:{i}" for i in range(8)]


async def test_a_full_queue_answers_503_and_the_redelivery_is_handled() -> None:
    gate = asyncio.Event()
    async with serve_channel(FakeAgent(gate=gate), queue_size=2) as s:
        assert (await s.post(text_webhook("wamid.q1", "1", "5561900000001"))).status == 200
        assert (await s.post(text_webhook("wamid.q2", "2", "5561900000002"))).status == 200
        refused = await s.post(text_webhook("wamid.q3", "3", "5561900000003"))
        assert refused.status == 503
        assert (await s.http.get(f"{s.url}/webhooks/whatsapp/health")).status == 200
        gate.set()
        await s.settle()
        redelivered = await s.post(text_webhook("wamid.q3", "3", "5561900000003"))
        assert redelivered.status == 200  # the refused message was not left claimed
        await s.settle()
        assert sorted(m.text for m in s.agent.messages) == ["1", "2", "3"]


async def test_shutdown_drains_what_was_acknowledged() -> None:
    agent = FakeAgent(delay=0.05)
    async with serve_channel(agent) as s:
        for i in range(10):
            assert (await s.post(text_webhook(f"wamid.d{i}", str(i)))).status == 200
        draining = asyncio.create_task(s.channel.drain())
        await asyncio.sleep(0.01)
        health = await s.http.get(f"{s.url}/webhooks/whatsapp/health")
        assert health.status == 503  # load balancers stop sending while it drains
        assert (await health.json())["accepting"] is False
        assert len(agent.messages) < 10  # still draining
        await draining
        assert [m.text for m in agent.messages] == [str(i) for i in range(10)]
        late = await s.post(text_webhook("wamid.late", "late"))
        assert late.status == 503


async def test_each_message_is_marked_read_when_handled() -> None:
    async with serve_channel() as s:
        await s.post(text_webhook("wamid.R", "oi"))
        await s.settle()
        await asyncio.sleep(0.05)
        assert s.provider.read == ["wamid.R"]
    async with serve_channel(mark_read=False) as s:
        await s.post(text_webhook("wamid.R", "oi"))
        await s.settle()
        assert s.provider.read == []


async def test_user_message_carries_sender_id_message_id_and_metadata() -> None:
    async with serve_channel() as s:
        await s.post(fixture("inbound_image"))
        await s.settle()
        (message,) = s.agent.messages
        assert message.sender_id == "15550002222"
        assert message.message_id == "wamid.FAKE0001"
        assert message.input_channel == "whatsapp"
        assert message.metadata["whatsapp"]["media"]["id"] == "100000000000101"
        assert message.text.startswith("/send_media{")


async def test_health_and_metrics_report_state_without_secrets() -> None:
    async with serve_channel() as s:
        await s.post(text_webhook("wamid.M", "oi"))
        await s.post(text_webhook("wamid.M", "oi"))
        await s.settle()
        health = await (await s.http.get(f"{s.url}/webhooks/whatsapp/health")).json()
        assert health == {"ok": True, "provider": "cloud", "queue_depth": 0, "accepting": True}
        metrics = await (await s.http.get(f"{s.url}/webhooks/whatsapp/metrics")).text()
        assert 'whatsapp_events_received_total{kind="message_text"} 2' in metrics
        assert "whatsapp_duplicates_dropped_total 1" in metrics
        assert "whatsapp_messages_handled_total 1" in metrics
        assert "whatsapp_handling_latency_seconds_count 1" in metrics
        for secret in (APP_SECRET, VERIFY_TOKEN, "test-access-token"):
            assert secret not in metrics and secret not in json.dumps(health)


def serpro_body(name: str = "inbound_text") -> dict[str, Any]:
    value = dict(fixture(name)["entry"][0]["changes"][0]["value"])
    value.update({"contacts": [], "delay": 0, "idRequisicao": "I1"})
    return value


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({}, "", 401),
        ({"Authorization": "Bearer nope"}, "", 403),
        ({}, "?token=nope", 403),
        ({"Authorization": f"Bearer {SERPRO_TOKEN}"}, "", 200),
        ({}, f"?token={SERPRO_TOKEN}", 200),
    ],
)
async def test_serpro_webhook_token_missing_wrong_right(
    headers: dict[str, str], query: str, status: int
) -> None:
    async with serve_channel(provider="serpro") as s:
        answer = await s.http.post(
            f"{s.url}/webhooks/whatsapp/webhook{query}", json=serpro_body(), headers=headers
        )
        assert answer.status == status
        await s.settle()
        assert len(s.agent.messages) == (1 if status == 200 else 0)


async def test_serpro_list_and_data_wrappings_are_accepted() -> None:
    auth = {"Authorization": f"Bearer {SERPRO_TOKEN}"}
    async with serve_channel(provider="serpro") as s:
        first, second = serpro_body(), serpro_body("inbound_location")
        second["messages"] = [{**second["messages"][0], "id": "wamid.LOC"}]
        for body in ([first], {"data": [second]}):
            assert (
                await s.http.post(f"{s.url}/webhooks/whatsapp/webhook", json=body, headers=auth)
            ).status == 200
        await s.settle()
        assert [m.message_id for m in s.agent.messages] == ["wamid.FAKE0001", "wamid.LOC"]


def test_sign_matches_the_recorded_signature() -> None:
    example = fixture("webhook_signature_example")
    assert sign(example["app_secret"], example["raw_body"].encode()) == example["header_value"]


class SilentAgent(FakeAgent):
    """A bot whose turn produces nothing (as when the action server is down) or fails."""

    fail: bool = False

    async def handle_message(self, message: Any) -> None:
        self.messages.append(message)
        if self.fail:
            raise RuntimeError("policy exploded")


@pytest.mark.parametrize("fail", [False, True], ids=["no-response", "exception"])
async def test_a_turn_without_any_response_gets_a_polite_message_not_silence(fail: bool) -> None:
    agent = SilentAgent()
    agent.fail = fail
    async with serve_channel(agent) as s:
        await s.post(text_webhook("wamid.SILENT", "oi"))
        await s.settle()
        assert [(to, m) for to, m in s.provider.sent] == [
            ("15550002222", Text(s.channel.settings.silence_fallback))
        ]
        assert s.channel.metrics.silent_turns == 1
    async with serve_channel(SilentAgent(), silence_fallback="") as s:
        await s.post(text_webhook("wamid.SILENT2", "oi"))
        await s.settle()
        assert s.provider.sent == []


def test_floods_of_503_log_one_line_per_reason_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    shedding = ThrottledLog(interval=10.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING)
    refused = "Webhook refused (%d %s)%s"
    for _ in range(5):
        shedding.warn("queue_full", refused, 503, "queue_full", ": 2 queued")
    shedding.warn("dedup_unavailable", refused, 503, "dedup_unavailable", ": ConnectionError()")
    now[0] += 10.5
    shedding.warn("queue_full", refused, 503, "queue_full", ": 3 queued")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "Webhook refused (503 queue_full): 2 queued",
        "Webhook refused (503 dedup_unavailable): ConnectionError()",
        "Webhook refused (503 queue_full): 3 queued (4 more since the last such line)",
    ]


async def test_a_flood_of_refusals_is_counted_whole_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = asyncio.Event()
    async with serve_channel(FakeAgent(gate=gate), queue_size=1) as s:
        assert (await s.post(text_webhook("wamid.f0", "0", "5561900000001"))).status == 200
        for i in range(1, 21):
            refused = await s.post(text_webhook(f"wamid.f{i}", str(i), "5561900000002"))
            assert refused.status == 503 and (await refused.json()) == {"error": "queue_full"}
        metrics = await (await s.http.get(f"{s.url}/webhooks/whatsapp/metrics")).text()
        assert 'whatsapp_webhook_rejected_total{reason="queue_full"} 20' in metrics
        assert caplog.text.count("503 queue_full") == 1
        wrong = await s.post(text_webhook("wamid.x", "x"), signed=False)
        wrong_again = await s.post(text_webhook("wamid.y", "y"), signed=False)
        assert (wrong.status, wrong_again.status) == (401, 401)
        assert caplog.text.count("401 signature_missing") == 1  # a flood too: throttled
        gate.set()
        await s.settle()


async def test_webhook_skips_rasas_cors_and_unread_access_log() -> None:
    access = logging.getLogger("sanic.access")
    level = access.level
    access.setLevel(logging.ERROR)  # Rasa's default (LOG_LEVEL_LIBRARIES)
    try:
        async with serve_channel(cors="*") as s:
            assert s.server.app.config.ACCESS_LOG is False
            origin = {"Origin": "https://example.org"}
            webhook = await s.post(text_webhook("wamid.C", "oi"), headers=origin)
            health = await s.http.get(f"{s.url}/webhooks/whatsapp/health", headers=origin)
            assert webhook.status == 200 and health.status == 200
            assert "Access-Control-Allow-Origin" not in webhook.headers
            assert "Access-Control-Allow-Origin" in health.headers
        access.setLevel(logging.INFO)  # an operator who asked for access lines keeps them
        async with serve_channel() as s:
            assert s.server.app.config.ACCESS_LOG is True
    finally:
        access.setLevel(level)


async def test_floods_of_refused_requests_log_one_line_per_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Anyone can send unsigned, forged or oversized requests by the thousand.
    caplog.set_level(logging.INFO)
    async with serve_channel() as s:
        for i in range(20):
            assert (await s.post(text_webhook(f"wamid.U{i}", "oi"), signed=False)).status == 401
            forged = await s.post(
                text_webhook(f"wamid.F{i}", "oi"),
                signed=False,
                headers={"X-Hub-Signature-256": "sha256=00"},
            )
            assert forged.status == 403
        lines = [r.getMessage() for r in caplog.records if "Webhook refused" in r.getMessage()]
        assert lines == [
            "Webhook refused (401 signature_missing)",
            "Webhook refused (403 signature_invalid)",
        ]
        assert s.channel.metrics.rejected_requests == {
            "signature_missing": 20,
            "signature_invalid": 20,
        }
