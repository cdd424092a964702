"""Events a person would not answer get no reply and no read receipt: reactions, deletions,
edits, system notices and call permission replies (recorded payloads, real HTTP)."""

from __future__ import annotations

import asyncio
import copy
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage
from rasa.shared.core.events import BotUttered

from bot.addons.whatsapp.inbound import quiet
from bot.addons.whatsapp.outbound.messages import Text
from tests.channel_harness import FakeAgent, serve_channel
from tests.whatsapp_fixtures import fixture

QUIET_INTENTS = ("/react", "/message_deleted", "/message_edited", "/call_permission_reply")


class RulesAgent(FakeAgent):
    """Answers like the bot's rules: ``action_listen`` (nothing) for the quiet intents, an
    echo for anything else; its tracker's last bot message is ``last_utterance``."""

    last_utterance: str | None = None

    async def retrieve(self, sender_id: str) -> Any:
        events = []
        if self.last_utterance is not None:
            events.append(BotUttered("…", metadata={"utter_action": self.last_utterance}))
        return SimpleNamespace(events=events)

    async def handle_message(self, message: UserMessage) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.messages.append(message)
        if not message.text or not message.text.startswith(QUIET_INTENTS):
            sender = message.sender_id or ""
            await message.output_channel.send_response(sender, {"text": f"eco: {message.text}"})


def text_webhook(wamid: str, body: str) -> dict[str, Any]:
    payload = copy.deepcopy(fixture("inbound_text"))
    payload["entry"][0]["changes"][0]["value"]["messages"][0].update(
        {"id": wamid, "from": "15550002222", "text": {"body": body}}
    )
    return payload


def about(name: str, wamid: str, original: str) -> dict[str, Any]:
    """The revoke/edit fixture ``name`` as event ``wamid`` about message ``original``."""
    payload = copy.deepcopy(fixture(name))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = wamid
    message[message["type"]]["original_message_id"] = original
    return payload


# fixture ▸ (what Rasa receives, the quiet_events counter it bumps)
RECORDED = {
    "inbound_reaction": (
        '/react{"emoji":"😮","reaction":"other","reacted_message_id":"wamid.FAKE0002"}',
        "reaction",
    ),
    "inbound_reaction_removed": (
        '/react{"reaction":"removed","reacted_message_id":"wamid.FAKE0002"}',
        "reaction",
    ),
    "inbound_reaction_thumbs_up": (
        '/react{"emoji":"👍🏽","reaction":"positive","reacted_message_id":"wamid.FAKE0002"}',
        "reaction",
    ),
    "inbound_revoke": ('/message_deleted{"deleted_message_id":"wamid.FAKE0002"}', "revoke"),
    "inbound_edit_text": (
        '/message_edited{"edited_message_id":"wamid.FAKE0002","edited_text":"Text was edited"}',
        "edit",
    ),
    "inbound_edit_caption": (
        '/message_edited{"edited_message_id":"wamid.FAKE0002","edited_text":"caption"}',
        "edit",
    ),
    "inbound_interactive_call_permission_accept": (
        '/call_permission_reply{"call_permission":"accept"}',
        "call_permission_reply",
    ),
    "inbound_interactive_call_permission_reject": (
        '/call_permission_reply{"call_permission":"reject"}',
        "call_permission_reply",
    ),
}


@pytest.mark.parametrize("name", sorted(RECORDED))
async def test_recorded_event_reaches_rasa_and_gets_no_reply_nor_read_receipt(name: str) -> None:
    expected_text, counter = RECORDED[name]
    async with serve_channel(RulesAgent()) as s:
        assert (await s.post(fixture(name))).status == 200
        await s.settle()
        await asyncio.sleep(0.05)  # a read receipt would be in flight by now
        assert [(m.text, m.message_id) for m in s.agent.messages] == [
            (expected_text, "wamid.FAKE0001")
        ]
        assert s.provider.sent == []  # no reply, and no "could not answer" fallback
        assert s.provider.read == []
        assert s.channel.metrics.quiet_events == {counter: 1}
        assert s.channel.metrics.silent_turns == 0


@pytest.mark.parametrize(
    "name",
    [
        "inbound_system_user_changed_number",
        "inbound_system_user_changed_number_bsuid",
        "inbound_system_user_changed_user_id",
        "inbound_system_identity_changed",
    ],
)
async def test_system_notice_never_reaches_rasa(name: str) -> None:
    async with serve_channel(RulesAgent()) as s:
        assert (await s.post(fixture(name))).status == 200
        await s.settle()
        await asyncio.sleep(0.05)
        assert s.agent.messages == []
        assert s.provider.sent == []
        assert s.provider.read == []
        assert s.channel.metrics.quiet_events == {"system": 1}


async def test_a_bsuid_change_notice_keeps_the_citizen_in_one_conversation() -> None:
    before = copy.deepcopy(fixture("inbound_text_bsuid_only"))
    value = before["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["user_id"] = "CO.1234567890"
    value["messages"][0].update({"from_user_id": "CO.1234567890", "id": "wamid.BEFORE"})
    after = copy.deepcopy(before)
    value = after["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["user_id"] = "MX.0987654321"
    value["messages"][0].update({"from_user_id": "MX.0987654321", "id": "wamid.AFTER"})
    async with serve_channel(RulesAgent()) as s:
        for payload in (before, fixture("inbound_system_user_changed_user_id"), after):
            assert (await s.post(payload)).status == 200
            await s.settle()
        assert [(m.message_id, m.sender_id) for m in s.agent.messages] == [
            ("wamid.BEFORE", "CO.1234567890"),
            ("wamid.AFTER", "CO.1234567890"),
        ]


async def test_a_message_deleted_before_its_turn_is_not_handled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = asyncio.Event()
    caplog.set_level(logging.INFO, "bot.addons.whatsapp")
    async with serve_channel(RulesAgent(gate=gate)) as s:
        await s.post(text_webhook("wamid.A", "oi"))  # running: held at the gate
        await s.post(text_webhook("wamid.B", "quero o boleto"))  # waiting behind it
        await s.post(about("inbound_revoke", "wamid.DEL", "wamid.B"))
        gate.set()
        await s.settle()
        await asyncio.sleep(0.05)
        assert [m.text for m in s.agent.messages] == ["oi"]
        assert s.provider.sent == [("15550002222", Text("eco: oi"))]
        assert s.provider.read == ["wamid.A"]
        assert s.channel.metrics.quiet_events == {"deleted_before_turn": 1, "revoke_applied": 1}
    assert "wamid.B was deleted by the citizen before its turn: not handled" in caplog.text


async def test_a_message_deleted_while_it_is_handled_is_recorded_after_it() -> None:
    gate = asyncio.Event()
    async with serve_channel(RulesAgent(gate=gate)) as s:
        await s.post(text_webhook("wamid.A", "oi"))  # at the front: already being handled
        await s.post(about("inbound_revoke", "wamid.DEL", "wamid.A"))
        gate.set()
        await s.settle()
        assert [m.text for m in s.agent.messages] == [
            "oi",
            '/message_deleted{"deleted_message_id":"wamid.A"}',
        ]
        assert s.provider.sent == [("15550002222", Text("eco: oi"))]


async def test_an_edit_before_the_turn_is_answered_instead_of_the_original() -> None:
    gate = asyncio.Event()
    async with serve_channel(RulesAgent(gate=gate)) as s:
        await s.post(text_webhook("wamid.A", "oi"))
        await s.post(text_webhook("wamid.B", "segunda via do IPTO"))
        await s.post(about("inbound_edit_text", "wamid.EDIT", "wamid.B"))
        gate.set()
        await s.settle()
        await asyncio.sleep(0.05)
        assert [(m.text, m.message_id) for m in s.agent.messages] == [
            ("oi", "wamid.A"),
            ("Text was edited", "wamid.B"),
        ]
        edited = s.agent.messages[1].metadata["whatsapp"]
        assert edited["type"] == "text"
        assert edited["edited"] == {"edit_id": "wamid.EDIT", "original_message_id": "wamid.B"}
        assert [m.body for _, m in s.provider.sent if isinstance(m, Text)] == [
            "eco: oi",
            "eco: Text was edited",
        ]
        assert s.provider.read == ["wamid.A", "wamid.B"]
        assert s.channel.metrics.quiet_events == {"edit_applied": 1}


async def test_an_edit_after_the_answer_is_handled_as_new_only_when_opted_in() -> None:
    async with serve_channel(RulesAgent(), edits_as_new_messages=True) as s:
        await s.post(text_webhook("wamid.B", "segunda via do IPTO"))
        await s.settle()
        await s.post(about("inbound_edit_text", "wamid.EDIT", "wamid.B"))
        await s.settle()
        await asyncio.sleep(0.05)
        assert [(m.text, m.message_id) for m in s.agent.messages] == [
            ("segunda via do IPTO", "wamid.B"),
            ("Text was edited", "wamid.EDIT"),
        ]
        assert [m.body for _, m in s.provider.sent if isinstance(m, Text)] == [
            "eco: segunda via do IPTO",
            "eco: Text was edited",
        ]
        assert s.provider.read == ["wamid.B"]  # the edit itself gets no read receipt
        assert s.channel.metrics.quiet_events == {"edit_as_new_message": 1}


@pytest.mark.parametrize(
    ("name", "last_utterance", "feedback"),
    [
        ("inbound_reaction_thumbs_up", quiet.FEEDBACK_QUESTION, "positive"),
        ("inbound_reaction_thumbs_up", "utter_greet", None),
        ("inbound_reaction", quiet.FEEDBACK_QUESTION, None),
    ],
    ids=["thumbs-up-after-question", "thumbs-up-elsewhere", "other-emoji-after-question"],
)
async def test_a_thumb_right_after_the_feedback_question_is_that_feedback(
    name: str, last_utterance: str, feedback: str | None
) -> None:
    agent = RulesAgent()
    agent.last_utterance = last_utterance
    async with serve_channel(agent) as s:
        await s.post(fixture(name))
        await s.settle()
        (message,) = agent.messages
        assert message.text is not None
        assert (f'"feedback":"{feedback}"' in message.text) is (feedback is not None)
        assert s.channel.metrics.reaction_feedback == ({feedback: 1} if feedback else {})
        assert s.provider.sent == []


async def test_thumbs_down_with_a_skin_tone_is_negative_feedback() -> None:
    payload = copy.deepcopy(fixture("inbound_reaction_thumbs_up"))
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["reaction"]["emoji"] = "👎🏿"
    agent = RulesAgent()
    agent.last_utterance = quiet.FEEDBACK_QUESTION
    async with serve_channel(agent) as s:
        await s.post(payload)
        await s.settle()
        assert agent.messages[0].text == (
            '/react{"emoji":"👎🏿","reaction":"negative",'
            '"reacted_message_id":"wamid.FAKE0002","feedback":"negative"}'
        )
        assert s.channel.metrics.reactions == {"negative": 1}
        metrics = s.channel.metrics.render()
        assert 'whatsapp_reaction_feedback_total{feedback="negative"} 1' in metrics
        assert 'whatsapp_reactions_total{sentiment="negative"} 1' in metrics


async def test_what_a_citizen_expects_an_answer_to_still_gets_one() -> None:
    """A poll (unsupported) is not quiet: Rasa gets /unsupported_message and answers."""
    async with serve_channel(RulesAgent()) as s:
        await s.post(fixture("inbound_unsupported"))
        await s.settle()
        assert s.agent.messages[0].text == '/unsupported_message{"message_type":"unsupported"}'
        assert len(s.provider.sent) == 1
        assert s.channel.metrics.quiet_events == {}


async def test_a_message_and_its_deletion_in_one_webhook_are_both_left_unhandled() -> None:
    payload = text_webhook("wamid.B", "quero o boleto")
    revoke = about("inbound_revoke", "wamid.DEL", "wamid.B")
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    messages.append(revoke["entry"][0]["changes"][0]["value"]["messages"][0])
    async with serve_channel(RulesAgent()) as s:
        assert (await s.post(payload)).status == 200
        await s.settle()
        await asyncio.sleep(0.05)
        assert s.agent.messages == []
        assert s.provider.sent == []
        assert s.provider.read == []
        assert s.channel.metrics.quiet_events == {"deleted_before_turn": 1, "revoke_applied": 1}
