"""End to end: a real `rasa run` with the trained model and the local Whisper backend
hears voice notes served by the fake Graph API's media endpoint, and answers them."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from scripts.voice_dev_model import join_model
from tests.e2e.conftest import E2E_SECRETS, WhatsAppStack
from tests.fakes.graph import FakeGraph, running_graph
from tests.support.stack import ROOT, free_port, start_rasa, write_endpoints
from tests.support.threaded import InThread
from tests.test_voice import CLIP, OGG, voice_webhook
from tests.whatsapp_fixtures import fixture

pytestmark = pytest.mark.e2e
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
SENDER = "5561955554444"


@pytest.fixture(scope="module")
def voice_stack(
    trained_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WhatsAppStack]:
    model_dir = tmp_path_factory.mktemp("whisper-base")
    digest = join_model(model_dir)
    endpoints = write_endpoints(tmp_path_factory.mktemp("voice") / "endpoints.yml", None)
    fake = FakeGraph(token=E2E_SECRETS["WPP_AUTHORIZATION_TOKEN"])
    for name, content in CLIP.items():
        fake.media[name] = (content, OGG)
    with InThread(lambda: running_graph(fake)) as graph:
        env = {
            **E2E_SECRETS,
            "WPP_API_BASE_URL": graph.url,
            "WPP_VOICE_BACKEND": "local",
            "WPP_VOICE_MODEL_PATH": str(model_dir),
            "WPP_VOICE_MODEL_SHA256": digest,
            "WPP_VOICE_CONFIRM_BELOW": "0.33",  # espeak's voice: see test_voice_local.py
            "WPP_VOICE_MAX_SECONDS": "3",
        }
        with start_rasa(
            free_port(),
            env,
            credentials=ROOT / "credentials.yml",
            endpoints=endpoints,
            model=trained_model,
            name="rasa-voice-e2e",
        ) as rasa:
            yield WhatsAppStack(rasa, graph)


def tap(wamid: str, reply_id: str, title: str) -> dict[str, object]:
    payload = copy.deepcopy(fixture("inbound_interactive_button_reply"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = SENDER
    message = value["messages"][0]
    message.update({"from": SENDER, "id": wamid})
    message["interactive"]["button_reply"] = {"id": reply_id, "title": title}
    return payload


def response_text(name: str) -> str:
    variations = DOMAIN["responses"][name]
    return str(next(v for v in variations if "condition" not in v)["text"])


def test_voice_notes_are_heard_confirmed_when_unsure_and_refused_politely(
    voice_stack: WhatsAppStack,
) -> None:
    stack = voice_stack
    assert "Voice notes: backend=local" in stack.rasa.log_text()

    # A clear "bom dia" is answered like the typed greeting.
    assert stack.post_webhook(voice_webhook("wamid.VE1", "bom_dia", SENDER)) == 200
    (greeting,) = stack.wait_for_sent(SENDER, 1)
    assert greeting["interactive"]["body"]["text"] == response_text("utter_greet")

    # A mumbled note is read back with Sim / Não.
    assert stack.post_webhook(voice_webhook("wamid.VE2", "iptu_mumbled", SENDER)) == 200
    confirm = stack.wait_for_sent(SENDER, 2)[1]
    body = confirm["interactive"]["body"]["text"]
    assert body.startswith("Entendi: *") and body.endswith("*. É isso?")
    buttons = confirm["interactive"]["action"]["buttons"]
    assert [b["reply"]["title"] for b in buttons] == ["Sim", "Não"]
    assert buttons[1]["reply"]["id"] == "/voice_rejected"
    heard = body.removeprefix("Entendi: *").removesuffix("*. É isso?")
    assert heard and buttons[0]["reply"]["id"] == heard  # "Sim" sends the transcript on

    # "Não" asks the citizen to type.
    assert stack.post_webhook(tap("wamid.VE3", "/voice_rejected", "Não")) == 200
    rejected = stack.wait_for_sent(SENDER, 3)[2]
    assert rejected["text"]["body"] == response_text("utter_voice_rejected")

    # A broken file and an over-long note get the request to type.
    assert stack.post_webhook(voice_webhook("wamid.VE4", "broken", SENDER)) == 200
    broken = stack.wait_for_sent(SENDER, 4)[3]
    assert broken["text"]["body"] == response_text("utter_voice_failed")
    assert stack.post_webhook(voice_webhook("wamid.VE5", "long_tone", SENDER)) == 200
    long = stack.wait_for_sent(SENDER, 5)[4]
    too_long = next(v for v in DOMAIN["responses"]["utter_voice_failed"] if "condition" in v)[
        "text"
    ]
    assert long["text"]["body"] == too_long

    metrics = stack.metrics()
    for outcome in ("transcribed", "confirm", "undecodable", "too_long"):
        assert f'whatsapp_voice_notes_total{{outcome="{outcome}"}} 1' in metrics
