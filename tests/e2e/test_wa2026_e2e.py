"""End to end, WhatsApp 2026: a real `rasa run` with the trained model answers a citizen
with a username and no phone, keeps her conversation when her phone appears, never
answers a standby copy or a group message, and counts billed statuses."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import WhatsAppStack
from tests.support.stack import ROOT
from tests.whatsapp_fixtures import fixture

pytestmark = pytest.mark.e2e
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
CITIZEN = "BR.5012873346190021"  # a username user of this test only
CITIZEN_PHONE = "5561990001234"  # the phone she shares later


def bsuid_only(wamid: str, message: dict[str, Any], phone: str = "") -> dict[str, Any]:
    """Meta's webhook for a username user (fixture inbound_text_bsuid_only), with ``message``
    as its content; with ``phone``, the same user after her phone became known."""
    payload = copy.deepcopy(fixture("inbound_text_bsuid_only"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["user_id"] = CITIZEN
    original = value["messages"][0]
    value["messages"][0] = {
        "from_user_id": CITIZEN,
        "id": wamid,
        "timestamp": original["timestamp"],
        **message,
    }
    if phone:
        value["contacts"][0]["wa_id"] = phone
        value["messages"][0]["from"] = phone
    return payload


def test_a_username_citizen_is_served_through_her_bsuid_then_her_phone(
    whatsapp_stack: WhatsAppStack,
) -> None:
    oi = bsuid_only("wamid.E2E.bsuid.oi", {"type": "text", "text": {"body": "oi"}})
    assert whatsapp_stack.post_webhook(oi) == 200
    (greeting,) = whatsapp_stack.wait_for_sent(CITIZEN, 1)
    assert greeting["recipient"] == CITIZEN and "to" not in greeting
    assert greeting["interactive"]["body"]["text"] == DOMAIN["responses"]["utter_greet"][0]["text"]

    pick = {
        "type": "interactive",
        "interactive": {
            "type": "list_reply",
            "list_reply": {"id": '/choose_service{"service":"iptu"}', "title": "IPTU"},
        },
    }
    assert whatsapp_stack.post_webhook(bsuid_only("wamid.E2E.bsuid.pick", pick)) == 200
    _, feedback = whatsapp_stack.wait_for_sent(CITIZEN, 2)  # the answer joins the buttons
    assert feedback["interactive"]["type"] == "button"

    # She shared her phone: Meta now sends both; the conversation goes on, replies to "to".
    yes = {
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": "/affirm", "title": "Sim"}},
    }
    later = bsuid_only("wamid.E2E.bsuid.yes", yes, phone=CITIZEN_PHONE)
    assert whatsapp_stack.post_webhook(later) == 200
    (thanks,) = whatsapp_stack.wait_for_sent(CITIZEN_PHONE, 1)
    positive = DOMAIN["responses"]["utter_feedback_positive"][0]["text"]
    assert thanks["text"]["body"] == positive  # the rule that needs the feedback question


def test_standby_copies_and_group_messages_get_nothing(whatsapp_stack: WhatsAppStack) -> None:
    standby, group = fixture("webhook_standby_text"), fixture("inbound_group_text")
    assert whatsapp_stack.post_webhook(standby) == 200
    assert whatsapp_stack.post_webhook(group) == 200
    metrics = whatsapp_stack.metrics()
    assert 'whatsapp_webhook_fields_total{field="standby"} 1' in metrics
    assert 'whatsapp_messages_not_answered_total{reason="group"} 1' in metrics
    time.sleep(3)  # what would have been answered is answered in well under 3 s
    addressed = {b.get("to") or b.get("recipient") for b in whatsapp_stack.graph.sent}
    assert not addressed & {"+5561987654321", "+5561985550123", "BR.4183920571164408"}


def test_the_pricing_metric_counts_a_delivered_status(whatsapp_stack: WhatsAppStack) -> None:
    assert whatsapp_stack.post_webhook(fixture("status_delivered_bsuid_pricing")) == 200
    assert (
        'whatsapp_priced_messages_total{category="service",type="regular",billable="true"} 1'
        in whatsapp_stack.metrics()
    )
