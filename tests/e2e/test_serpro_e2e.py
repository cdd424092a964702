"""End to end through Serpro: a real `rasa run` with WPP_PROVIDER=serpro and a fake Serpro.

The same credentials.yml as the Cloud API: WPP_PROVIDER alone chooses the provider.
"""

from __future__ import annotations

import copy
import json
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.fakes.serpro import CLIENT_ID, CLIENT_SECRET, FakeSerpro, running_serpro
from tests.support.stack import ROOT, free_port, start_rasa, write_endpoints
from tests.support.threaded import InThread
from tests.whatsapp_fixtures import fixture

pytestmark = pytest.mark.e2e
WEBHOOK_TOKEN = "e2e-serpro-webhook-token"


def test_oi_through_serpro_gets_the_greeting_as_a_list(trained_model: Path, tmp_path: Path) -> None:
    greeting = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))["responses"][
        "utter_greet"
    ][0]
    fake = FakeSerpro()
    with InThread(lambda: running_serpro(fake)) as serpro:
        env = {
            "WPP_PROVIDER": "serpro",
            "SERPRO_CLIENT_ID": CLIENT_ID,
            "SERPRO_CLIENT_SECRET": CLIENT_SECRET,
            "SERPRO_WABA_ID": "waba-e2e",
            "SERPRO_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "SERPRO_BASE_URL": serpro.url,
        }
        endpoints = write_endpoints(tmp_path / "endpoints.yml", None)
        port = free_port()
        with start_rasa(
            port,
            env,
            credentials=ROOT / "credentials.yml",  # the same file: WPP_PROVIDER chooses
            endpoints=endpoints,
            model=trained_model,
            name="rasa-serpro-e2e",
        ) as rasa:
            value = copy.deepcopy(fixture("inbound_text")["entry"][0]["changes"][0]["value"])
            value["messages"][0].update(
                {"from": "5561955554444", "id": "wamid.SERPRO.oi", "text": {"body": "oi"}}
            )
            value.update({"contacts": [], "delay": 0, "idRequisicao": "I-E2E"})
            request = urllib.request.Request(
                f"{rasa.url}/webhooks/whatsapp/webhook",
                data=json.dumps(value).encode(),
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {WEBHOOK_TOKEN}",
                },
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
            deadline = time.monotonic() + 60
            while not serpro.sent and time.monotonic() < deadline:
                time.sleep(0.2)
    ((endpoint, body),) = serpro.sent
    assert endpoint == "interativa-lista"
    assert body["destinatario"] == "5561955554444"
    assert body["textoBody"] == greeting["text"]
    assert body["button"] == "Ver opções"
    assert [r["id"] for r in body["secoes"][0]["rows"]] == [
        b["payload"] for b in greeting["buttons"]
    ]
    assert serpro.reads == [{"message_id": "wamid.SERPRO.oi"}]
