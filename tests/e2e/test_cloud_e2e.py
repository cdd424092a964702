"""End to end: a real `rasa run` with the trained model answers a signed webhook on WhatsApp."""

from __future__ import annotations

import copy
import time

import pytest
import yaml

from tests.e2e.conftest import WhatsAppStack
from tests.support.stack import ROOT
from tests.whatsapp_fixtures import fixture

pytestmark = pytest.mark.e2e
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


def text_webhook(wamid: str, body: str, sender: str) -> dict[str, object]:
    payload = copy.deepcopy(fixture("inbound_text"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"][0].update({"id": wamid, "from": sender, "text": {"body": body}})
    value["contacts"][0]["wa_id"] = sender
    return payload


def test_oi_is_answered_with_the_greeting_and_the_services_list(
    whatsapp_stack: WhatsAppStack,
) -> None:
    sender = "5561988887777"
    assert whatsapp_stack.post_webhook(text_webhook("wamid.E2E.oi", "oi", sender)) == 200
    (greeting,) = whatsapp_stack.wait_for_sent(sender, 1)
    expected = DOMAIN["responses"]["utter_greet"][0]
    assert greeting["to"] == "+" + sender
    assert greeting["type"] == "interactive"
    interactive = greeting["interactive"]
    assert interactive["type"] == "list"
    assert interactive["body"]["text"] == expected["text"]
    rows = interactive["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == [b["payload"] for b in expected["buttons"]]
    # the message was marked read with the typing indicator
    reads = [r["body"] for r in whatsapp_stack.graph.requests if r["body"].get("status") == "read"]
    assert {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.E2E.oi",
        "typing_indicator": {"type": "text"},
    } in reads


def test_a_tapped_list_row_gets_the_services_answer_and_feedback_buttons(
    whatsapp_stack: WhatsAppStack,
) -> None:
    sender = "5561977776666"
    reply = copy.deepcopy(fixture("inbound_interactive_list_reply"))
    value = reply["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = sender
    message = value["messages"][0]
    message.update({"from": sender, "id": "wamid.E2E.pick"})
    message["interactive"]["list_reply"] = {
        "id": '/choose_service{"service":"iptu"}',
        "title": "IPTU",
    }
    assert whatsapp_stack.post_webhook(reply) == 200
    iptu = next(
        v
        for v in DOMAIN["responses"]["utter_service_info"]
        if v.get("condition", [{}])[0].get("value") == "iptu"
    )
    question = DOMAIN["responses"]["utter_ask_feedback"][0]
    # The answer and "Essa resposta ajudou?" are one billed message (outbound/join.py).
    (answer,) = whatsapp_stack.wait_for_sent(sender, 1)
    assert answer == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+" + sender,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": f"{iptu['text']}\n\n{question['text']}"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": b["payload"], "title": b["title"]}}
                    for b in question["buttons"]
                ]
            },
        },
    }


def test_a_redelivered_webhook_is_answered_once(whatsapp_stack: WhatsAppStack) -> None:
    sender = "5561966665555"
    payload = text_webhook("wamid.E2E.dup", "tchau", sender)
    for _ in range(3):
        assert whatsapp_stack.post_webhook(payload) == 200
    whatsapp_stack.wait_for_sent(sender, 1)
    import time

    time.sleep(3)
    assert len(whatsapp_stack.wait_for_sent(sender, 1)) == 1


def test_a_reaction_and_a_deletion_get_no_reply_and_a_thumb_is_feedback(
    whatsapp_stack: WhatsAppStack,
) -> None:
    """The trained bot's rules answer a reaction and a deletion with silence; a 👍 right
    after "Essa resposta ajudou?" is counted as that feedback."""
    sender = "5561955554444"
    reply = copy.deepcopy(fixture("inbound_interactive_list_reply"))
    value = reply["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = sender
    value["messages"][0].update({"from": sender, "id": "wamid.E2E.q.pick"})
    value["messages"][0]["interactive"]["list_reply"] = {
        "id": '/choose_service{"service":"coleta"}',
        "title": "Coleta de lixo",
    }
    assert whatsapp_stack.post_webhook(reply) == 200
    whatsapp_stack.wait_for_sent(sender, 1)  # the answer with "Essa resposta ajudou?"

    for name, wamid in (
        ("inbound_reaction_thumbs_up", "wamid.E2E.q.react"),
        ("inbound_revoke", "wamid.E2E.q.revoke"),
    ):
        payload = copy.deepcopy(fixture(name))
        value = payload["entry"][0]["changes"][0]["value"]
        value["contacts"][0]["wa_id"] = sender
        value["messages"][0].update({"from": sender, "id": wamid})
        assert whatsapp_stack.post_webhook(payload) == 200
    # Turns of one citizen run in order: once "tchau" is answered, both events were handled.
    assert whatsapp_stack.post_webhook(text_webhook("wamid.E2E.q.bye", "tchau", sender)) == 200
    whatsapp_stack.wait_for_sent(sender, 2)
    time.sleep(1.0)  # a stray reply to the reaction or the deletion would show by now
    sent = whatsapp_stack.wait_for_sent(sender, 2)
    assert len(sent) == 2
    assert sent[1]["text"]["body"] == DOMAIN["responses"]["utter_goodbye"][0]["text"]
    reads = [r["body"].get("message_id") for r in whatsapp_stack.graph.requests]
    assert "wamid.E2E.q.react" not in reads
    assert "wamid.E2E.q.revoke" not in reads
    metrics = whatsapp_stack.metrics()
    assert 'whatsapp_reaction_feedback_total{feedback="positive"} 1' in metrics
    assert 'whatsapp_quiet_events_total{event="revoke"} 1' in metrics
