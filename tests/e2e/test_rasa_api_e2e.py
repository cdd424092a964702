"""Rasa's own HTTP API (``rasa run --enable-api --auth-token``) delivering on WhatsApp:
``POST /conversations/{id}/trigger_intent?output_channel=whatsapp`` sends the triggered
intent's responses to the citizen through the channel, as a turn would."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import API_TOKEN, WhatsAppStack
from tests.support.stack import ROOT
from tests.test_webhook_http import text_webhook

pytestmark = pytest.mark.e2e

AUTH_TOKEN = API_TOKEN
CITIZEN = "5561999990021"
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def stack(whatsapp_stack: WhatsAppStack) -> WhatsAppStack:
    """The session's `rasa run`, started with ``--enable-api --auth-token AUTH_TOKEN``."""
    return whatsapp_stack


def trigger(stack: WhatsAppStack, conversation: str, query: str, intent: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{stack.rasa.url}/conversations/{conversation}/trigger_intent?{query}",
        data=json.dumps({"name": intent}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_triggered_intent_is_answered_on_whatsapp(stack: WhatsAppStack) -> None:
    # The citizen wrote first: the 24-hour window is open for a free-form message.
    assert stack.post_webhook(text_webhook("wamid.RASAAPI1", "oi", sender=CITIZEN)) == 200
    before = len(stack.wait_for_sent(CITIZEN, 1))
    query = f"output_channel=whatsapp&token={AUTH_TOKEN}"
    status, answer = trigger(stack, CITIZEN, query, "greet")
    assert status == 200, answer
    assert answer["tracker"]["sender_id"] == CITIZEN
    greeting = stack.wait_for_sent(CITIZEN, before + 1)[-1]
    expected = DOMAIN["responses"]["utter_greet"][0]
    assert greeting["to"] == "+" + CITIZEN
    assert greeting["type"] == "interactive"
    assert greeting["interactive"]["type"] == "list"
    assert greeting["interactive"]["body"]["text"] == expected["text"]
    rows = greeting["interactive"]["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == [b["payload"] for b in expected["buttons"]]
    # Rasa adds "messages" only for its collecting channel: this went to WhatsApp instead.
    assert "messages" not in answer


def test_the_api_refuses_a_wrong_token_and_sends_nothing(stack: WhatsAppStack) -> None:
    before = len(stack.graph.sent)
    status, _ = trigger(stack, CITIZEN, "output_channel=whatsapp&token=wrong", "greet")
    assert status == 401
    assert len(stack.graph.sent) == before


def test_without_output_channel_rasa_returns_the_responses_and_whatsapp_gets_nothing(
    stack: WhatsAppStack,
) -> None:
    before = len(stack.graph.sent)
    status, answer = trigger(stack, CITIZEN, f"token={AUTH_TOKEN}", "greet")
    assert status == 200, answer
    assert answer["messages"][0]["text"] == DOMAIN["responses"]["utter_greet"][0]["text"]
    assert len(stack.graph.sent) == before
