"""End to end: rasa run, the action server and the knowledge service answer open questions."""

from __future__ import annotations

import copy
import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.addons.whatsapp.config import SILENCE_FALLBACK
from tests.e2e.conftest import WhatsAppStack, cloud_stack
from tests.e2e.test_cloud_e2e import text_webhook
from tests.support.stack import (
    ROOT,
    VENV_BIN,
    Proc,
    free_port,
    start_action_server,
    start_process,
    write_endpoints,
)
from tests.whatsapp_fixtures import fixture

pytestmark = pytest.mark.e2e
RESPONSES = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))["responses"]


@dataclass
class KnowledgeStack:
    """One `rasa run` with Rasa's REST channel and the WhatsApp channel (a fake Graph API),
    the action server and the knowledge service: one start of `rasa run` for the module."""

    knowledge: Proc
    actions: Proc
    wa: WhatsAppStack

    @property
    def rasa(self) -> Proc:
        return self.wa.rasa

    def say(self, sender: str, text: str) -> list[str]:
        request = urllib.request.Request(
            f"{self.rasa.url}/webhooks/rest/webhook",
            data=json.dumps({"sender": sender, "message": text}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            replies: list[dict[str, Any]] = json.loads(response.read())
        return [r.get("text", "") for r in replies]

    def questions_asked(self) -> int:
        """How many questions the knowledge service has received (its access log)."""
        log = self.knowledge.log_path.read_text(encoding="utf-8", errors="replace")
        return log.count('"POST /ask ')


@pytest.fixture(scope="module")
def stack(
    trained_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KnowledgeStack]:
    folder = tmp_path_factory.mktemp("knowledge-e2e")
    ports = {name: free_port() for name in ("knowledge", "actions")}
    env = {
        "KNOWLEDGE_API_URL": f"http://127.0.0.1:{ports['knowledge']}/ask",
        "KNOWLEDGE_TIMEOUT": "3",
    }
    credentials = folder / "credentials.yml"
    credentials.write_text("rest:\nbot.addons.whatsapp.WhatsAppInput:\n", encoding="utf-8")
    endpoints = write_endpoints(folder / "endpoints.yml", ports["actions"])
    py = str(VENV_BIN / "python")
    with (
        start_process(
            "knowledge-e2e",
            [py, "-m", "knowledge", "--port", str(ports["knowledge"])],
            env,
            f"http://127.0.0.1:{ports['knowledge']}/health",
            ports["knowledge"],
        ) as knowledge,
        start_action_server(ports["actions"], env) as actions,
        cloud_stack(
            trained_model, endpoints, "rasa-knowledge-e2e", env=env, credentials=credentials
        ) as wa,
    ):
        yield KnowledgeStack(knowledge, actions, wa)


def test_a_question_gets_the_documents_answer_then_the_feedback_question(
    stack: KnowledgeStack,
) -> None:
    asked = stack.questions_asked()
    replies = stack.say("5561911110001", "como pago o iptu atrasado?")
    # One call: a slot mapping naming the action made Rasa run it twice per question.
    assert stack.questions_asked() == asked + 1
    # Rasa's REST channel splits a text on blank lines; WhatsApp keeps it one message.
    *answer, feedback = replies
    assert answer[0].startswith("*IPTU atrasado e parcelamento de dívida*")
    assert "https://www.novaaurora.example.gov.br/servicos/iptu" in "\n\n".join(answer)
    assert feedback == RESPONSES["utter_ask_feedback"][0]["text"]
    assert sum(part.startswith("*IPTU atrasado") for part in answer) == 1
    assert sum("Fontes:" in part for part in answer) == 1


def citizen_event(name: str, sender: str, wamid: str, **fields: Any) -> dict[str, Any]:
    """A recorded webhook (tests/data/whatsapp/) from ``sender``, its message updated."""
    payload = copy.deepcopy(fixture(name))
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = sender
    value["messages"][0].update({"from": sender, "id": wamid, **fields})
    return payload


def settled_sent(stack: WhatsAppStack, to: str, count: int) -> list[dict[str, Any]]:
    """The messages to ``to`` once ``count`` arrived and a stray one would have shown."""
    stack.wait_for_sent(to, count)
    time.sleep(1.5)
    return stack.wait_for_sent(to, count)


def test_on_whatsapp_an_answer_and_its_feedback_buttons_are_one_billed_message(
    stack: KnowledgeStack,
) -> None:
    """Each message is billed since October 2026: the answer and "Essa resposta ajudou?"
    go out as one interactive message, no filler; its Sim button and a 👍 on it still
    answer the question."""
    question = RESPONSES["utter_ask_feedback"][0]
    buttons = [
        {"type": "reply", "reply": {"id": b["payload"], "title": b["title"]}}
        for b in question["buttons"]
    ]
    wa = stack.wa
    sender = "5561922220001"
    ask = text_webhook("wamid.KW.ask", "como pago o iptu atrasado?", sender)
    assert wa.post_webhook(ask) == 200
    (answer,) = settled_sent(wa, sender, 1)
    assert answer["type"] == "interactive"
    assert answer["interactive"]["type"] == "button"
    assert answer["interactive"]["action"] == {"buttons": buttons}
    body = answer["interactive"]["body"]["text"]
    assert body.startswith("*IPTU atrasado e parcelamento de dívida*")
    assert "https://www.novaaurora.example.gov.br/servicos/iptu" in body
    assert body.endswith(f"\n\n{question['text']}")

    sim = {"type": "button_reply", "button_reply": {"id": "/affirm", "title": "Sim"}}
    tap = citizen_event("inbound_interactive_button_reply", sender, "wamid.KW.sim")
    tap["entry"][0]["changes"][0]["value"]["messages"][0]["interactive"] = sim
    assert wa.post_webhook(tap) == 200
    _, thanks = settled_sent(wa, sender, 2)
    assert thanks["text"]["body"] == RESPONSES["utter_feedback_positive"][0]["text"]

    other = "5561922220002"
    ask = text_webhook("wamid.KW.ask2", "como pago o iptu atrasado?", other)
    assert wa.post_webhook(ask) == 200
    wa.wait_for_sent(other, 1)
    thumb = citizen_event("inbound_reaction_thumbs_up", other, "wamid.KW.thumb")
    assert wa.post_webhook(thumb) == 200
    bye = text_webhook("wamid.KW.bye", "tchau", other)
    assert wa.post_webhook(bye) == 200  # one citizen's turns run in order
    assert len(settled_sent(wa, other, 2)) == 2  # the reaction got no reply
    assert 'whatsapp_reaction_feedback_total{feedback="positive"} 1' in wa.metrics()


def test_a_greeting_gets_the_greeting_without_asking_the_knowledge_service(
    stack: KnowledgeStack,
) -> None:
    asked = stack.questions_asked()
    assert stack.say("5561911110004", "oi") == [RESPONSES["utter_greet"][0]["text"]]
    assert stack.questions_asked() == asked


def test_a_nonsense_question_gets_no_answer(stack: KnowledgeStack) -> None:
    replies = stack.say("5561911110002", "me conta uma piada")
    assert replies == [RESPONSES["utter_knowledge_no_answer"][0]["text"]]


def test_with_the_knowledge_service_down_the_user_gets_an_apology(stack: KnowledgeStack) -> None:
    stack.knowledge.stop()
    replies = stack.say("5561911110003", "onde recarrego o cartão do ônibus?")
    assert replies == [RESPONSES["utter_knowledge_unavailable"][0]["text"]]


def test_with_the_action_server_down_the_whatsapp_user_is_not_left_in_silence(
    stack: KnowledgeStack,
) -> None:
    stack.actions.stop()  # nothing listens on its port any more
    question = text_webhook("wamid.NOACT", "como pago o iptu atrasado?", "5561933332222")
    assert stack.wa.post_webhook(question) == 200
    (reply,) = stack.wa.wait_for_sent("5561933332222", 1)
    # Exactly the fallback: two of the bot's own responses also start with "Desculpe".
    assert reply == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+5561933332222",
        "type": "text",
        "text": {"body": SILENCE_FALLBACK, "preview_url": False},
    }
