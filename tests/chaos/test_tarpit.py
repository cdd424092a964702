"""Refusals before authentication are held (``inbound/tarpit.py``): a flood gets as many
refusals a second as it holds connections, and a correct webhook is never held.

Over real HTTP on loopback, the ingress (aiohttp) and the channel as ``rasa run`` serves it
(Sanic), with the delay shortened so the tests take seconds."""

from __future__ import annotations

import asyncio
import itertools
import time

from bench.flood import Flood, answer_of
from bot.addons.whatsapp.inbound.signature import sign
from bot.addons.whatsapp.inbound.tarpit import Tarpit
from bot.addons.whatsapp.metrics import Metrics
from tests.channel_harness import APP_SECRET, serve_channel
from tests.support.hostile import forged_signature, raw_post, text_payload
from tests.test_ingress import eventually, serve_ingress

FORGED = raw_post(
    text_payload("5561900000077", "wamid.FORGED", "oi"),
    forged_signature(text_payload("5561900000077", "wamid.FORGED", "oi")),
)


def signed(wamid: str, sender: str = "5561900000088") -> bytes:
    body = text_payload(sender, wamid, "bom dia")
    return raw_post(body, b"X-Hub-Signature-256: " + sign(APP_SECRET, body).encode())


async def exchange(url: str, request: bytes, finished: list[str], name: str) -> tuple[int, bool]:
    """Send one raw request on a new connection; its status and whether the connection
    stays open, noting ``name`` in ``finished`` when the answer came."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(answer_of(reader), 10)
        finished.append(name)
        return answer
    finally:
        writer.close()


async def test_a_forged_webhook_is_held_and_closed_while_a_signed_one_is_acked_at_once() -> None:
    async with serve_channel() as rasa, serve_ingress(rasa.url, refusal_delay_ms=800) as ingress:
        finished: list[str] = []
        started = time.monotonic()
        forged = asyncio.create_task(exchange(ingress.url, FORGED, finished, "forged"))
        await asyncio.sleep(0.05)  # the forged one is held first
        assert await exchange(ingress.url, signed("wamid.T1"), finished, "signed") == (200, True)
        assert finished == ["signed"]  # not behind the held refusal
        assert await forged == (403, False)  # answered, then "Connection: close"
        assert time.monotonic() - started >= 0.4  # held 0.5 to 1.5 times the delay
        assert finished == ["signed", "forged"]
        await eventually(lambda: [m.text for m in rasa.agent.messages] == ["bom dia"])
        assert ingress.ingress.metrics.refusals_delayed == {"delayed": 1}
        assert 'whatsapp_webhook_refusals_total{answered="delayed"} 1' in (
            ingress.ingress.metrics.render()
        )


async def test_beyond_the_hold_limit_refusals_are_answered_at_once() -> None:
    overrides = {"refusal_delay_ms": 3000, "refusal_hold_max": 2}  # held 1.5 s at least
    async with serve_channel() as rasa, serve_ingress(rasa.url, **overrides) as ingress:
        finished: list[str] = []
        held = [
            asyncio.create_task(exchange(ingress.url, FORGED, finished, f"held{i}"))
            for i in range(2)
        ]
        await eventually(lambda: ingress.ingress.intake.tarpit.held == 2)
        beyond = [await exchange(ingress.url, FORGED, finished, f"now{i}") for i in range(2)]
        assert beyond == [(403, False), (403, False)]  # at once, and still closed
        assert finished == ["now0", "now1"]
        assert await asyncio.gather(*held) == [(403, False), (403, False)]
        assert ingress.ingress.metrics.refusals_delayed == {"delayed": 2, "at_once": 2}
        assert ingress.ingress.intake.tarpit.held == 0


async def flood_for(url: str, seconds: float, connections: int) -> dict[str, int]:
    flood = Flood(url, connections)
    running = asyncio.create_task(flood.run())
    await asyncio.sleep(seconds)
    flood.stopping.set()
    result = await running
    outcomes: dict[str, int] = {}
    for by_outcome in result["statuses"].values():
        for outcome, count in by_outcome.items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
    return outcomes


async def test_a_flood_gets_one_refusal_per_connection_per_delay() -> None:
    seconds, connections, delay = 2.0, 4, 0.5
    async with serve_channel() as rasa:
        async with serve_ingress(rasa.url, refusal_delay_ms=0) as ingress:
            unheld = await flood_for(ingress.url, seconds, connections)
        async with serve_ingress(rasa.url, refusal_delay_ms=int(delay * 1000)) as ingress:
            held = await flood_for(ingress.url, seconds, connections)
        assert rasa.agent.messages == []
    # Each connection waits at least half the delay per request (plus the one in flight
    # at the end).
    bound = connections * (seconds / (delay / 2) + 1)
    assert 0 < sum(held.values()) <= bound, held
    assert sum(unheld.values()) > 5 * bound, unheld  # what the same flood gets at once
    assert set(held) <= {"401", "403", "413", "415", "reset"}, held


async def test_rasa_runs_route_holds_a_forged_webhook_but_not_a_signed_one() -> None:
    async with serve_channel(refusal_delay_ms=800) as rasa:
        finished: list[str] = []
        started = time.monotonic()
        forged = asyncio.create_task(exchange(rasa.url, FORGED, finished, "forged"))
        await asyncio.sleep(0.05)
        status, _ = await exchange(rasa.url, signed("wamid.T2"), finished, "signed")
        assert status == 200 and finished == ["signed"]
        assert (await forged)[0] == 403
        assert time.monotonic() - started >= 0.4
        await rasa.settle()
        assert [m.text for m in rasa.agent.messages] == ["bom dia"]
        assert rasa.channel.metrics.refusals_delayed == {"delayed": 1}


async def test_refusals_sent_together_do_not_come_back_together() -> None:
    tarpit = Tarpit(delay=0.4, hold_max=100, metrics=Metrics())
    loop = asyncio.get_running_loop()
    started = loop.time()
    answered: list[float] = []

    async def refuse() -> None:
        await tarpit.hold()
        answered.append(loop.time() - started)

    await asyncio.gather(*(refuse() for _ in range(40)))
    assert min(answered) >= 0.2 - 0.01 and max(answered) <= 0.6 + 0.05
    assert max(answered) - min(answered) > 0.2  # spread over the window, not in step
    assert tarpit.metrics.refusals_delayed == {"delayed": 40} and tarpit.held == 0


async def test_refusals_are_answered_no_faster_than_the_rate_in_all() -> None:
    tarpit = Tarpit(delay=0.05, hold_max=100, metrics=Metrics(), rate=50)
    loop = asyncio.get_running_loop()
    answered: list[float] = []

    async def refuse() -> None:
        await tarpit.hold()
        answered.append(loop.time())

    await asyncio.gather(*(refuse() for _ in range(20)))
    gaps = [b - a for a, b in itertools.pairwise(answered)]
    assert min(gaps) >= 1 / 50 - 0.005  # one slot each, 20 ms apart
    assert answered[-1] - answered[0] >= 19 / 50 - 0.01


async def test_a_flood_with_many_connections_gets_no_more_than_the_rate() -> None:
    seconds, connections, rate = 2.0, 32, 10
    overrides = {"refusal_delay_ms": 200, "refusal_rate": rate}
    async with serve_channel() as rasa, serve_ingress(rasa.url, **overrides) as ingress:
        outcomes = await flood_for(ingress.url, seconds, connections)
        held = ingress.ingress.intake.tarpit.held
    # Without the rate, 32 connections at 0.1 to 0.3 s each would get over 200.
    assert 0 < sum(outcomes.values()) <= rate * seconds + connections, outcomes
    assert held <= connections
