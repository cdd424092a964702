"""A text followed by reply buttons in one turn ▸ one billed WhatsApp message.

The output channel is driven the way Rasa drives it (``send_response`` per response, then
the turn runner's ``flush``) and what reaches the sender is compared as Graph API bodies,
whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.delivery.progress import TurnProgress
from bot.addons.whatsapp.outbound.convert import ConversionOptions
from bot.addons.whatsapp.outbound.join import SEPARATOR, holdable, join
from bot.addons.whatsapp.outbound.messages import Button, OutMessage, ReplyButtons, Text
from bot.addons.whatsapp.outbound.short_keys import PayloadStore
from bot.addons.whatsapp.output import WhatsAppOutput
from bot.addons.whatsapp.providers.cloud.bodies import cloud_body
from tests.channel_harness import FakeAgent, serve_channel
from tests.whatsapp_fixtures import fixture

TO = "5561911110001"
ENVELOPE = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "+" + TO}
ANSWER = "*IPTU atrasado*\nO IPTU vencido pode ser parcelado no portal da Prefeitura."
FEEDBACK: dict[str, Any] = {
    "text": "Essa resposta ajudou?",
    "buttons": [{"title": "Sim", "payload": "/affirm"}, {"title": "Não", "payload": "/deny"}],
    "utter_action": "utter_ask_feedback",
}
FEEDBACK_ACTION = {
    "buttons": [
        {"type": "reply", "reply": {"id": "/affirm", "title": "Sim"}},
        {"type": "reply", "reply": {"id": "/deny", "title": "Não"}},
    ]
}


class RecordingSender:
    """Stands in for :class:`~bot.addons.whatsapp.outbound.sender.Sender`."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_all(self, to: str, messages: Sequence[OutMessage]) -> list[str | None]:
        self.sent.extend(cloud_body(to, m) for m in messages)
        return [f"wamid.OUT{len(self.sent)}" for _ in messages]


def output(join_on: bool = True, progress: TurnProgress | None = None) -> WhatsAppOutput:
    channel = WhatsAppOutput(RecordingSender(), PayloadStore(), ConversionOptions(), progress)  # type: ignore[arg-type]
    channel.join_text_and_buttons = join_on
    return channel


async def turn(channel: WhatsAppOutput, *responses: dict[str, Any]) -> list[dict[str, Any]]:
    """One turn: each response as Rasa hands it over, then the turn's end."""
    for response in responses:
        await channel.send_response(TO, response)
    await channel.flush()
    sent: list[dict[str, Any]] = channel.sender.sent  # type: ignore[attr-defined]
    return sent


def text_body(body: str) -> dict[str, Any]:
    return {**ENVELOPE, "type": "text", "text": {"preview_url": False, "body": body}}


def buttons_body(body: str, action: dict[str, Any] = FEEDBACK_ACTION) -> dict[str, Any]:
    return {
        **ENVELOPE,
        "type": "interactive",
        "interactive": {"type": "button", "body": {"text": body}, "action": action},
    }


async def test_an_answer_and_the_feedback_buttons_go_out_as_one_interactive_message() -> None:
    sent = await turn(output(), {"text": ANSWER}, FEEDBACK)
    assert sent == [buttons_body(f"{ANSWER}\n\nEssa resposta ajudou?")]


async def test_the_joined_body_may_fill_the_interactive_limit_exactly() -> None:
    answer = "a" * (limits.INTERACTIVE_BODY_MAX - len(SEPARATOR) - len(FEEDBACK["text"]))
    sent = await turn(output(), {"text": answer}, FEEDBACK)
    assert sent == [buttons_body(f"{answer}\n\nEssa resposta ajudou?")]
    assert len(sent[0]["interactive"]["body"]["text"]) == limits.INTERACTIVE_BODY_MAX


async def test_an_answer_one_character_too_long_to_join_goes_out_as_two_messages() -> None:
    answer = "a" * (limits.INTERACTIVE_BODY_MAX - len(SEPARATOR) - len(FEEDBACK["text"]) + 1)
    sent = await turn(output(), {"text": answer}, FEEDBACK)
    assert sent == [text_body(answer), buttons_body("Essa resposta ajudou?")]


async def test_a_text_followed_by_four_buttons_keeps_its_list_as_today() -> None:
    menu = {
        "text": "Qual serviço?",
        "buttons": [{"title": f"Serviço {i}", "payload": f"/s{i}"} for i in range(1, 5)],
    }
    sent = await turn(output(), {"text": ANSWER}, menu)
    rows = [{"id": f"/s{i}", "title": f"Serviço {i}"} for i in range(1, 5)]
    assert sent == [
        text_body(ANSWER),
        {
            **ENVELOPE,
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Qual serviço?"},
                "action": {"button": "Ver opções", "sections": [{"rows": rows}]},
            },
        },
    ]


async def test_a_text_not_followed_by_buttons_is_sent_unchanged() -> None:
    sent = await turn(output(), {"text": ANSWER}, {"text": "Mais alguma coisa?"})
    assert sent == [text_body(ANSWER), text_body("Mais alguma coisa?")]


async def test_a_text_alone_in_its_turn_is_sent_when_the_turn_ends() -> None:
    channel = output()
    await channel.send_response(TO, {"text": ANSWER})
    assert channel.sender.sent == []  # type: ignore[attr-defined]
    assert await turn(channel) == [text_body(ANSWER)]


async def test_with_joining_off_the_answer_and_the_buttons_are_two_messages_at_once() -> None:
    channel = output(join_on=False)
    await channel.send_response(TO, {"text": ANSWER})
    assert channel.sender.sent == [text_body(ANSWER)]  # type: ignore[attr-defined]
    sent = await turn(channel, FEEDBACK)
    assert sent == [text_body(ANSWER), buttons_body("Essa resposta ajudou?")]


async def test_only_the_last_of_several_texts_joins_the_buttons() -> None:
    sent = await turn(output(), {"text": "Primeiro."}, {"text": ANSWER}, FEEDBACK)
    assert sent == [text_body("Primeiro."), buttons_body(f"{ANSWER}\n\nEssa resposta ajudou?")]


async def test_a_text_with_a_link_joins_and_keeps_the_link_in_the_body() -> None:
    answer = "Veja em https://www.novaaurora.example.gov.br/servicos/iptu"
    sent = await turn(output(), {"text": answer}, FEEDBACK)
    assert sent == [buttons_body(f"{answer}\n\nEssa resposta ajudou?")]


async def test_a_joined_turn_counts_one_reply_so_a_rerun_skips_exactly_it() -> None:
    counted: list[int] = []

    async def record() -> None:
        counted.append(1)

    first = output(progress=TurnProgress(record))
    sent = await turn(first, {"text": ANSWER}, FEEDBACK, {"text": "Até logo."})
    assert len(sent) == len(counted) == 2
    # The same turn run again (taken over after a crash) once its first reply was counted:
    again = output(progress=TurnProgress(record, skip=1))
    assert await turn(again, {"text": ANSWER}, FEEDBACK, {"text": "Até logo."}) == [
        text_body("Até logo.")
    ]


async def test_a_held_text_of_a_turn_taken_by_another_process_is_not_sent() -> None:
    async def record() -> None:
        pass

    async def not_ours() -> bool:
        return False

    channel = output(progress=TurnProgress(record, still_ours=not_ours))
    assert await turn(channel, {"text": ANSWER}) == []


def test_only_a_single_short_text_is_held() -> None:
    short = Text(ANSWER)
    assert holdable([short]) == short
    assert holdable([short, Text("outro")]) is None  # a long text split in two
    assert holdable([Text("   ")]) is None
    assert holdable([Text("a" * (limits.INTERACTIVE_BODY_MAX - len(SEPARATOR)))]) is None
    assert holdable([ReplyButtons("corpo", ())]) is None


def test_join_needs_reply_buttons_first() -> None:
    assert join(Text("a"), []) is None
    assert join(Text("a"), [Text("b")]) is None


async def test_in_a_citizens_turn_the_channel_sends_the_answer_and_buttons_as_one() -> None:
    agent = FakeAgent(also_say=[FEEDBACK])  # "eco: <text>", then the feedback question
    async with serve_channel(agent) as s:
        assert (await s.post(fixture("inbound_text"))).status == 200
        await s.settle()
        ((_, only),) = s.provider.sent
        assert only == ReplyButtons(
            body="eco: Does it come in another color?\n\nEssa resposta ajudou?",
            buttons=(Button("/affirm", "Sim"), Button("/deny", "Não")),
        )


async def test_with_wpp_merge_text_buttons_off_the_turn_sends_two_messages() -> None:
    agent = FakeAgent(also_say=[FEEDBACK])
    async with serve_channel(agent, merge_text_buttons=False) as s:
        assert (await s.post(fixture("inbound_text"))).status == 200
        await s.settle()
        assert [m for _, m in s.provider.sent] == [
            Text("eco: Does it come in another color?"),
            ReplyButtons(
                body="Essa resposta ajudou?",
                buttons=(Button("/affirm", "Sim"), Button("/deny", "Não")),
            ),
        ]


async def test_outside_a_citizens_turn_a_text_is_sent_at_once() -> None:
    """Rasa's HTTP API (``trigger_intent``) and injected handoff turns have no turn end
    that would send a held text: their output sends each response as it comes."""
    async with serve_channel(FakeAgent()) as s:
        api_output = s.channel.get_output_channel()
        await api_output.send_response("5561911110001", {"text": ANSWER})
        assert [m for _, m in s.provider.sent] == [Text(ANSWER)]
