"""Notifications through a real `rasa run` (the trained model, its domain and tracker store):
answered on WhatsApp, refused outside the window, status followed from the webhooks."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.e2e.conftest import NOTIFY_TOKEN, WhatsAppStack
from tests.test_notify import status_webhook
from tests.test_webhook_http import text_webhook

pytestmark = pytest.mark.e2e

TOKEN = NOTIFY_TOKEN
CITIZEN = "5561999990001"  # status_webhook's recipient
STRANGER = "5561999990009"


@pytest.fixture(scope="module")
def stack(whatsapp_stack: WhatsAppStack) -> WhatsAppStack:
    """The session's `rasa run`, whose notify API takes ``TOKEN``."""
    return whatsapp_stack


def call(stack: WhatsAppStack, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{stack.rasa.url}/webhooks/whatsapp/notify{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_response_goes_to_a_citizen_inside_the_window_and_its_status_is_followed(
    stack: WhatsAppStack,
) -> None:
    assert stack.post_webhook(text_webhook("wamid.NOTIFY1", "oi", sender=CITIZEN)) == 200
    before = len(stack.wait_for_sent(CITIZEN, 1))
    status, answer = call(stack, "POST", "", {"recipient": CITIZEN, "response": "utter_greet"})
    assert (status, answer["status"]) == (200, "sent")
    greeting = stack.wait_for_sent(CITIZEN, before + 1)[-1]
    assert greeting["type"] == "interactive"
    assert greeting["interactive"]["body"]["text"].startswith("Olá! 👋")
    assert stack.post_webhook(status_webhook(answer["wamids"][-1], "read")) == 200
    assert call(stack, "GET", f"/{answer['id']}") == (
        200,
        {"id": answer["id"], "status": "read", "wamid": answer["wamids"][-1], "error": None},
    )


def test_a_citizen_who_never_wrote_gets_only_a_template(stack: WhatsAppStack) -> None:
    status, answer = call(stack, "POST", "", {"recipient": STRANGER, "response": "utter_greet"})
    assert (status, answer["error"]) == (409, "outside_service_window")
    template = {"name": "lembrete_iptu", "language": "pt_BR", "params": ["10/03"]}
    status, answer = call(stack, "POST", "", {"recipient": STRANGER, "template": template})
    assert (status, answer["status"]) == (200, "sent")
    assert stack.wait_for_sent(STRANGER, 1)[0]["template"]["name"] == "lembrete_iptu"
