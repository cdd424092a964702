"""The ingress process's code over real HTTP: the aiohttp app in front of the channel
mounted as Rasa mounts it (a fake agent runs the turns)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.addons.whatsapp.delivery.journal import RedisDedupStore
from bot.addons.whatsapp.errors import ConfigurationError
from bot.addons.whatsapp.inbound.signature import RELAY_SIGNATURE_HEADER, relay_signature, sign
from bot.addons.whatsapp.ingress.app import Ingress, channel_credentials, main
from tests.channel_harness import APP_SECRET, VERIFY_TOKEN, FakeAgent, serve_channel, settings
from tests.support.stack import free_port
from tests.test_webhook_http import text_webhook


@dataclass
class ServedIngress:
    url: str
    ingress: Ingress
    http: aiohttp.ClientSession

    async def post(self, payload: Any, signed: bool = True) -> aiohttp.ClientResponse:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if signed:
            headers["X-Hub-Signature-256"] = sign(APP_SECRET, body)
        return await self.http.post(
            f"{self.url}/webhooks/whatsapp/webhook", data=body, headers=headers
        )

    async def metrics(self) -> str:
        return await (await self.http.get(f"{self.url}/webhooks/whatsapp/metrics")).text()


@asynccontextmanager
async def serve_ingress(rasa_url: str, **overrides: Any) -> AsyncIterator[ServedIngress]:
    dedup = overrides.pop("dedup", None)
    ingress = Ingress(settings(**overrides), rasa_url, dedup=dedup)
    ingress.relay._backoff = (0.02, 0.1)  # retry quickly in tests
    runner = web.AppRunner(ingress.app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    http = aiohttp.ClientSession()
    try:
        yield ServedIngress(f"http://127.0.0.1:{port}", ingress, http)
    finally:
        await http.close()
        await runner.cleanup()


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_the_ingress_acknowledges_and_rasa_runs_the_turn() -> None:
    async with serve_channel() as rasa, serve_ingress(rasa.url) as ingress:
        answer = await ingress.post(text_webhook("wamid.I1", "oi"))
        assert answer.status == 200 and (await answer.json())["messages"] == 1
        await eventually(lambda: len(rasa.provider.sent) == 1)
        assert [m.text for m in rasa.agent.messages] == ["oi"]
        assert rasa.agent.messages[0].message_id == "wamid.I1"
        assert rasa.agent.messages[0].metadata["whatsapp"]["profile_name"]
        metrics = await ingress.metrics()
        assert "whatsapp_messages_relayed_total 1" in metrics
        assert 'whatsapp_events_received_total{kind="message_text"} 1' in metrics
        assert "whatsapp_messages_handled_total" not in metrics  # rasa run's, not the ingress's
        health = await (await ingress.http.get(f"{ingress.url}/webhooks/whatsapp/health")).json()
        assert health["ok"] and health["role"] == "ingress" and health["rasa_reachable"] is True


async def test_the_handshake_and_authentication_are_the_channels() -> None:
    async with serve_channel() as rasa, serve_ingress(rasa.url) as ingress:
        params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
        ok = await ingress.http.get(f"{ingress.url}/webhooks/whatsapp/webhook", params=params)
        assert ok.status == 200 and await ok.text() == "42"
        wrong = {**params, "hub.verify_token": "nope"}
        refused = await ingress.http.get(f"{ingress.url}/webhooks/whatsapp/webhook", params=wrong)
        assert refused.status == 403
        unsigned = await ingress.post(text_webhook("wamid.U", "oi"), signed=False)
        assert unsigned.status == 401 and (await unsigned.json()) == {"error": "signature_missing"}
        await asyncio.sleep(0.1)
        assert rasa.agent.messages == []


async def test_redeliveries_are_dropped_and_one_senders_order_is_kept() -> None:
    async with serve_channel() as rasa, serve_ingress(rasa.url) as ingress:
        for i in range(30):
            assert (await ingress.post(text_webhook(f"wamid.O{i}", str(i)))).status == 200
        assert (await ingress.post(text_webhook("wamid.O3", "3"))).status == 200  # redelivery
        await eventually(lambda: len(rasa.agent.messages) == 30)
        await asyncio.sleep(0.1)
        assert [m.text for m in rasa.agent.messages] == [str(i) for i in range(30)]
        assert "whatsapp_duplicates_dropped_total 1" in await ingress.metrics()


async def test_with_rasa_down_the_ingress_acknowledges_and_relays_once_it_is_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    async with serve_ingress(f"http://127.0.0.1:{port}") as ingress:
        for i in range(3):
            assert (await ingress.post(text_webhook(f"wamid.D{i}", str(i)))).status == 200
        await eventually(lambda: ingress.ingress.relay.reachable is False)
        health = await (await ingress.http.get(f"{ingress.url}/webhooks/whatsapp/health")).json()
        assert health["ok"] and health["queue_depth"] == 3 and health["rasa_reachable"] is False
        assert re.search(
            r"Could not relay \d acknowledged message\(s\) to \S+ \(unreachable\)", caplog.text
        )
        metrics = await ingress.metrics()
        assert 'whatsapp_relay_failures_total{reason="unreachable"}' in metrics
        assert "whatsapp_queue_depth 3" in metrics and "whatsapp_dedup_entries 3" in metrics
        async with serve_channel(port=port) as rasa:
            await eventually(lambda: len(rasa.agent.messages) == 3)
            assert [m.text for m in rasa.agent.messages] == ["0", "1", "2"]
            assert ingress.ingress.relay.depth == 0


async def test_a_full_rasa_pushes_back_and_nothing_is_lost_or_run_twice() -> None:
    gate = asyncio.Event()
    async with (
        serve_channel(FakeAgent(gate=gate), queue_size=2) as rasa,
        serve_ingress(rasa.url) as ingress,
    ):
        for i in range(6):
            sender = f"55619000000{i:02d}"
            assert (await ingress.post(text_webhook(f"wamid.F{i}", str(i), sender))).status == 200
        await eventually(lambda: 'reason="queue_full"' in ingress.ingress.metrics.render())
        assert ingress.ingress.relay.depth == 4  # rasa run holds two, the ingress the rest
        gate.set()
        await eventually(lambda: len(rasa.agent.messages) == 6)
        await asyncio.sleep(0.1)
        assert sorted(m.text for m in rasa.agent.messages) == [str(i) for i in range(6)]
        assert ingress.ingress.metrics.messages_relayed == 6


async def test_the_ingress_sheds_with_503_when_its_own_queue_is_full() -> None:
    port = free_port()  # rasa run is down: the ingress's queue fills
    async with serve_ingress(f"http://127.0.0.1:{port}", queue_size=2) as ingress:
        statuses = [
            (await ingress.post(text_webhook(f"wamid.S{i}", str(i)))).status for i in range(3)
        ]
        assert statuses == [200, 200, 503]
        async with serve_channel(port=port) as rasa:  # rasa run is back
            await eventually(lambda: len(rasa.agent.messages) == 2)
            # Meta redelivers the refused message: it was not left claimed, so it is taken.
            assert (await ingress.post(text_webhook("wamid.S2", "2"))).status == 200
            await eventually(lambda: len(rasa.agent.messages) == 3)
            await asyncio.sleep(0.1)
            assert [m.text for m in rasa.agent.messages] == ["0", "1", "2"]


async def test_the_ingress_answers_503_while_redis_is_down_and_keeps_nothing() -> None:
    dead = RedisDedupStore(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    async with (
        serve_channel() as rasa,
        serve_ingress(rasa.url, dedup=dead) as ingress,
    ):
        answer = await ingress.post(text_webhook("wamid.NR", "oi"))
        assert (answer.status, await answer.json()) == (503, {"error": "dedup_unavailable"})
        assert ingress.ingress.relay.depth == 0
        await asyncio.sleep(0.1)
        assert rasa.agent.messages == []


async def test_shutdown_names_what_it_could_not_relay(caplog: pytest.LogCaptureFixture) -> None:
    async with serve_ingress(f"http://127.0.0.1:{free_port()}", drain_timeout=0.2) as ingress:
        assert (await ingress.post(text_webhook("wamid.L", "oi"))).status == 200
    assert "1 acknowledged message(s) not relayed and lost" in caplog.text


async def test_the_relay_route_checks_its_signature_and_runs_a_retry_once() -> None:
    async with serve_channel() as rasa:
        record = {"wamid": "wamid.R", "wa_id": "15550002222", "type": "text"}
        record["data"] = {"text": {"body": "oi"}}  # type: ignore[assignment]
        body = json.dumps({"owner": "", "messages": [record]}).encode()
        url = f"{rasa.url}/webhooks/whatsapp/relay"
        forged = await rasa.http.post(
            url, data=body, headers={RELAY_SIGNATURE_HEADER: sign(APP_SECRET, body)}
        )
        assert forged.status == 403  # Meta's signature is not a relay signature
        signed = {RELAY_SIGNATURE_HEADER: relay_signature(APP_SECRET, body)}
        for _ in range(2):  # the ingress retries when it missed the answer
            answer = await rasa.http.post(url, data=body, headers=signed)
            assert answer.status == 200 and (await answer.json())["accepted"] == 1
        bad = b'{"messages": [{"wamid": "x"}]}'
        malformed = await rasa.http.post(
            url, data=bad, headers={RELAY_SIGNATURE_HEADER: relay_signature(APP_SECRET, bad)}
        )
        assert malformed.status == 400
        await rasa.settle()
        assert [m.text for m in rasa.agent.messages] == ["oi"]


def test_credentials_are_read_with_the_environment_substituted(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yml"
    path.write_text(
        "rest:\nbot.addons.whatsapp.WhatsAppInput:\n  provider: cloud\n"
        "  app_secret: ${WPP_APP_SECRET}\n  intents:\n    media: ${MEDIA_INTENT}\n",
        encoding="utf-8",
    )
    values = channel_credentials(path, {"WPP_APP_SECRET": "s3", "MEDIA_INTENT": "m"})
    assert values == {"provider": "cloud", "app_secret": "s3", "intents": {"media": "m"}}
    with pytest.raises(ConfigurationError, match="WPP_APP_SECRET"):
        channel_credentials(path, {"MEDIA_INTENT": "m"})


def test_an_empty_channel_section_takes_everything_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yml"
    path.write_text("bot.addons.whatsapp.WhatsAppInput:\n", encoding="utf-8")
    assert channel_credentials(path, {}) == {}
    path.write_text("rest:\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"has no 'bot\.addons\.whatsapp\.WhatsAppInput'"):
        channel_credentials(path, {})


def test_wpp_provider_alone_switches_the_ingress_to_serpro(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the default credentials.yml
    code = main([], {"WPP_PROVIDER": "serpro", "SERPRO_CLIENT_ID": "c"})
    assert code == 2
    error = capsys.readouterr().err
    assert "The WhatsApp channel (serpro) cannot start" in error
    assert "SERPRO_WEBHOOK_TOKEN" in error and "WPP_APP_SECRET" not in error


def test_a_credentials_file_naming_another_provider_stops_the_ingress_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "credentials.yml"
    path.write_text("bot.addons.whatsapp.WhatsAppInput:\n  provider: cloud\n", encoding="utf-8")
    code = main(["--credentials", str(path)], {"WPP_PROVIDER": "serpro"})
    assert code == 2
    assert "credentials.yml says provider: cloud but WPP_PROVIDER is serpro" in (
        capsys.readouterr().err
    )


def test_start_up_stops_naming_the_missing_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    root = Path(__file__).resolve().parents[1]
    environ = {"WPP_APP_SECRET": "s", "WPP_VERIFY_TOKEN": "v", "WPP_PHONE_NUMBER_IDENTIFIER": "1"}
    code = main(["--credentials", str(root / "credentials.yml")], environ)
    assert code == 2
    assert "WPP_AUTHORIZATION_TOKEN" in capsys.readouterr().err


async def test_an_unexpected_error_while_relaying_is_logged_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serve_channel() as rasa, serve_ingress(rasa.url) as ingress:
        relay = ingress.ingress.relay
        real_post = relay._post
        calls = []

        async def flaky(batch: list[bytes]) -> tuple[int, set[int]]:
            calls.append(len(batch))
            if len(calls) == 1:
                raise RuntimeError("a bug in the relay")
            return await real_post(batch)

        relay._post = flaky  # type: ignore[method-assign]
        assert (await ingress.post(text_webhook("wamid.BUG", "oi"))).status == 200
        await eventually(lambda: len(rasa.agent.messages) == 1)
        assert len(calls) == 2
        assert 'whatsapp_relay_failures_total{reason="error"} 1' in await ingress.metrics()
        assert "a bug in the relay" in caplog.text
