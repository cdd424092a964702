"""Sending through the Cloud API against a local fake Graph API: order, retries, limits."""

from __future__ import annotations

import pytest

from bot.addons.whatsapp.errors import WhatsAppApiError
from bot.addons.whatsapp.outbound.messages import Button, Media, OutMessage, ReplyButtons, Text
from bot.addons.whatsapp.outbound.ratelimit import RateLimiter
from bot.addons.whatsapp.outbound.sender import Sender, backoff_delay
from bot.addons.whatsapp.providers.cloud.client import CloudProvider
from bot.addons.whatsapp.providers.media import download_media
from tests.fakes.graph import FakeGraph, running_graph
from tests.whatsapp_fixtures import fixture

TO = "15550002222"


class Sleeps:
    """Records requested sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def provider_for(graph: FakeGraph) -> CloudProvider:
    return CloudProvider(graph.url, "v21.0", "100000000000002", graph.token, timeout=5)


async def make_sender(graph: FakeGraph, **kwargs: object) -> tuple[Sender, Sleeps]:
    sleeps = Sleeps()
    sender = Sender(provider_for(graph), sleep=sleeps, rate_per_second=1000, **kwargs)  # type: ignore[arg-type]
    await sender.start()
    return sender, sleeps


async def test_a_turns_messages_arrive_in_order_with_metas_body() -> None:
    async with running_graph() as graph:
        sender, _ = await make_sender(graph)
        turn: list[OutMessage] = [Text(f"mensagem {i}") for i in range(5)]
        turn += [
            ReplyButtons("Ajudou?", (Button("/affirm", "Sim"), Button("/deny", "Não"))),
            Media("image", link="https://x.example/a.png"),
        ]
        ids = await sender.send_all(TO, turn)
        await sender.close()
    assert ids == [f"wamid.OUT{i:04d}" for i in range(1, 8)]
    assert [b.get("text", {}).get("body") for b in graph.sent[:5]] == [
        f"mensagem {i}" for i in range(5)
    ]
    assert [b["type"] for b in graph.sent[5:]] == ["interactive", "image"]
    assert graph.requests[0]["path"] == "/v21.0/100000000000002/messages"
    assert graph.requests[0]["auth"] == f"Bearer {graph.token}"


async def test_a_500_is_retried_then_succeeds() -> None:
    async with running_graph() as graph:
        graph.fail(500, {"error": {"message": "Something went wrong", "code": 131000}}, times=2)
        sender, sleeps = await make_sender(graph)
        assert await sender.send_all(TO, [Text("oi")]) == ["wamid.OUT0001"]
        await sender.close()
    assert len(graph.requests) == 3 and len(graph.sent) == 1
    assert len(sleeps.calls) == 2 and sleeps.calls[1] > 0
    assert sender.metrics.send_retries == 2


async def test_retry_after_on_429_is_honoured() -> None:
    async with running_graph() as graph:
        graph.fail(429, fixture("error_rate_limit"), headers={"Retry-After": "7"})
        sender, sleeps = await make_sender(graph)
        await sender.send_all(TO, [Text("oi")])
        await sender.close()
    assert sleeps.calls == [7.0]
    assert len(graph.sent) == 1


async def test_pair_rate_limit_waits_four_to_the_attempt() -> None:
    async with running_graph() as graph:
        graph.fail(400, fixture("error_pair_rate_limit_131056"), times=3)
        sender, sleeps = await make_sender(graph)
        await sender.send_all(TO, [Text("oi")])
        await sender.close()
    assert sleeps.calls == [1.0, 4.0, 16.0]


@pytest.mark.parametrize(
    "name",
    [
        "error_invalid_parameter_100",
        "error_param_value_invalid_131009",
        "error_access_token_expired_190",
    ],
)
async def test_permanent_errors_are_not_retried_and_the_rest_still_goes(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_graph() as graph:
        graph.fail(400, fixture(name))
        sender, sleeps = await make_sender(graph)
        ids = await sender.send_all(TO, [Text("quebrada"), Text("seguinte")])
        await sender.close()
    code = fixture(name)["error"]["code"]
    assert ids == [None, "wamid.OUT0001"]
    assert sleeps.calls == []
    assert sender.metrics.failures[str(code)] == 1
    assert f"code={code}" in caplog.text and "15550002222" not in caplog.text


async def test_network_errors_are_retried_until_the_limit() -> None:
    sleeps = Sleeps()
    sender = Sender(
        CloudProvider("http://127.0.0.1:9", "v21.0", "1", "t", timeout=1),
        max_retries=2,
        sleep=sleeps,
    )
    await sender.start()
    with pytest.raises(WhatsAppApiError) as raised:
        await sender.send_one(TO, Text("oi"))
    await sender.close()
    assert raised.value.http_status == 0 and len(sleeps.calls) == 2


async def test_closed_window_without_template_is_logged_and_ends_the_turn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_graph() as graph:
        graph.fail(400, fixture("error_reengagement_131047"))
        sender, _ = await make_sender(graph)
        ids = await sender.send_all(TO, [Text("um"), Text("dois")])
        await sender.close()
    assert ids == [None, None]
    assert graph.sent == []
    assert sender.reengagement_failures == 1 and sender.metrics.failures["131047"] == 1
    assert "more than 24 hours" in caplog.text


async def test_closed_window_sends_the_configured_template_instead() -> None:
    async with running_graph() as graph:
        graph.fail(400, fixture("error_reengagement_131047"))
        sender, _ = await make_sender(
            graph, reengagement_template="retomar_conversa", reengagement_language="pt_BR"
        )
        await sender.send_all(TO, [Text("um"), Text("dois")])
        await sender.close()
    assert graph.sent == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "+15550002222",
            "type": "template",
            "template": {"name": "retomar_conversa", "language": {"code": "pt_BR"}},
        }
    ]


def test_the_rate_limiter_spaces_sends_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=80, clock=lambda: now[0])
    delays = [limiter.reserve() for _ in range(160)]
    assert delays[:80] == [0.0] * 80  # a second's worth of burst
    assert delays[80:] == pytest.approx([(i + 1) / 80 for i in range(80)])
    now[0] = 10.0  # after a pause the bucket is full again, not more
    assert [limiter.reserve() for _ in range(80)] == [0.0] * 80
    assert limiter.reserve() == pytest.approx(1 / 80)


def test_backoff_grows_exponentially_with_jitter() -> None:
    error = WhatsAppApiError(131000, "x", http_status=500)
    assert [backoff_delay(error, a, jitter=lambda: 0.0) for a in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert [backoff_delay(error, a, jitter=lambda: 1.0) for a in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_delay(error, 20, jitter=lambda: 1.0) == 60.0


async def test_mark_read_with_typing_and_media_download() -> None:
    async with running_graph() as graph:
        graph.media["100000000000101"] = (b"\x89PNG fake", "image/png")
        provider = provider_for(graph)
        await provider.start()
        await provider.mark_read("wamid.FAKE0001", typing=True)
        content, mime = await provider.download_media("100000000000101")
        await provider.close()
    assert graph.requests[0]["body"] == fixture("outbound_mark_read_typing")
    assert (content, mime) == (b"\x89PNG fake", "image/png")


async def test_actions_download_media_with_the_channels_variables() -> None:
    async with running_graph() as graph:
        graph.media["100000000000101"] = (b"JPEG bytes", "image/jpeg")
        env = {
            "WPP_AUTHORIZATION_TOKEN": graph.token,
            "WPP_VERIFY_TOKEN": "v",
            "WPP_PHONE_NUMBER_IDENTIFIER": "100000000000002",
            "WPP_APP_SECRET": "s",
            "WPP_API_BASE_URL": graph.url,
        }
        assert await download_media("100000000000101", env) == (b"JPEG bytes", "image/jpeg")
        with pytest.raises(WhatsAppApiError):
            await download_media("100000000000999", env)
