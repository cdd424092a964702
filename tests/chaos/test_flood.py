"""One number flooding must not starve other citizens (issue "Never lose", item 4): a
per-sender bound on every queue, and a relay that is fair across senders."""

from __future__ import annotations

import asyncio

from tests.channel_harness import FakeAgent, serve_channel
from tests.test_ingress import eventually, serve_ingress
from tests.test_webhook_http import text_webhook

FLOODER = "5561900000031"
CITIZEN = "5561900000032"


async def test_a_flooding_number_gets_503s_while_another_citizen_is_still_accepted() -> None:
    """Straight to rasa run: the flooder's share of the queue fills and only the flooder is
    refused (Meta redelivers those later); the other citizen is accepted and answered
    while the flood is still being worked through."""
    gate = asyncio.Event()  # the flooder's turns wait until the flood is in
    agent = FakeAgent(delay=0.05, gate=gate)
    async with serve_channel(agent, queue_size=60, sender_queue_size=20) as s:
        answers = [
            (await s.post(text_webhook(f"wamid.F{i}", f"spam {i}", FLOODER))).status
            for i in range(60)
        ]
        assert answers.count(200) == 20 and answers.count(503) == 40
        refused = await s.post(text_webhook("wamid.F60", "spam", FLOODER))
        assert await refused.json() == {"error": "sender_queue_full"}
        assert (await s.post(text_webhook("wamid.C1", "oi", CITIZEN))).status == 200
        gate.set()
        await eventually(lambda: any(m.sender_id == CITIZEN for m in agent.messages), 2.0)
        flooder_done = sum(m.sender_id == FLOODER for m in agent.messages)
        assert flooder_done < 10  # answered within a few turns, not after the flood
        await s.settle()


async def test_behind_the_ingress_the_relay_lets_another_citizen_pass_the_flood() -> None:
    """Through the ingress: the flooder's 50 messages wait in the relay while rasa run holds
    at most 10 per sender; the citizen's one message is relayed in the next batch, ahead
    of the flood, and answered within a few of the flooder's turns."""
    gate = asyncio.Event()
    agent = FakeAgent(delay=0.05, gate=gate)
    async with (
        serve_channel(agent, queue_size=20, sender_queue_size=10) as rasa,
        serve_ingress(rasa.url, sender_queue_size=50) as ingress,
    ):
        posted = [
            (await ingress.post(text_webhook(f"wamid.G{i}", f"spam {i}", FLOODER))).status
            for i in range(50)
        ]
        assert posted == [200] * 50
        await eventually(lambda: rasa.channel.sink.depth == 10)  # rasa's share is full
        assert (await ingress.post(text_webhook("wamid.D1", "oi", CITIZEN))).status == 200
        await eventually(lambda: rasa.channel.sink.depth == 11)  # relayed past the flood
        gate.set()
        await eventually(lambda: any(m.sender_id == CITIZEN for m in agent.messages), 3.0)
        flooder_done = sum(m.sender_id == FLOODER for m in agent.messages)
        assert flooder_done < 15
        await eventually(lambda: len(agent.messages) == 51, 15.0)
        assert [m.text for m in agent.messages if m.sender_id == FLOODER] == [
            f"spam {i}" for i in range(50)
        ]  # the flooder's own order is kept
