"""Rasa's turns run on the channel's worker thread; replies go out from the server's loop."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from rasa.core.channels.channel import UserMessage

from tests.channel_harness import FakeAgent, serve_channel
from tests.test_webhook_http import text_webhook


@dataclass
class BusyAgent(FakeAgent):
    """Blocks its thread the way Rasa's NLU does, and notes where it ran."""

    block_seconds: float = 0.3
    threads: list[str] = field(default_factory=list)

    async def handle_message(self, message: UserMessage) -> None:
        self.threads.append(threading.current_thread().name)
        threading.Event().wait(self.block_seconds)  # synchronous, like a graph run
        await super().handle_message(message)


async def test_a_turn_runs_on_the_worker_thread_and_its_reply_is_sent() -> None:
    agent = BusyAgent(block_seconds=0.0)
    async with serve_channel(agent, turn_thread=True) as s:
        assert (await s.post(text_webhook("wamid.T1", "oi"))).status == 200
        await s.settle()
    assert agent.threads == ["rasa-turns"]
    assert [(to, getattr(m, "body", m)) for to, m in s.provider.sent] == [
        ("15550002222", "eco: oi")
    ]


async def test_webhooks_are_answered_while_a_turn_blocks_its_thread() -> None:
    agent = BusyAgent(block_seconds=1.0)
    async with serve_channel(agent, turn_thread=True) as s:
        assert (await s.post(text_webhook("wamid.B1", "primeira", "5561900000001"))).status == 200
        await asyncio.sleep(0.1)  # the first turn is now blocking the worker thread
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await s.post(text_webhook("wamid.B2", "segunda", "5561900000002"))
        waited = loop.time() - started
        assert answer.status == 200
        assert waited < 0.5, f"the webhook waited {waited:.2f}s behind a blocked turn"
        await s.settle()
    assert sorted(m.text for m in agent.messages) == ["primeira", "segunda"]
