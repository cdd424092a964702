"""The privacy notice in the greeting: off in the fictional bot, on when a designer sets the
slot's initial value, the rest of the greeting (its buttons) the same either way."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import yaml
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker

from tests.support.stack import ROOT

NOTICE = "Saiba mais: https://novaaurora.example.gov.br/privacidade"


def greeting(domain_yaml: dict[str, Any]) -> dict[str, Any]:
    domain = Domain.from_dict(domain_yaml)
    tracker = DialogueStateTracker.from_events("5561999998888", [], domain.slots)
    nlg = TemplatedNaturalLanguageGenerator(domain.responses)
    result = asyncio.run(nlg.generate("utter_greet", tracker, "whatsapp"))
    assert result is not None
    return result


def test_the_greeting_has_no_privacy_notice_by_default_and_has_it_when_turned_on() -> None:
    domain_yaml = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    assert domain_yaml["slots"]["privacy_notice"]["initial_value"] is False
    off = greeting(domain_yaml)
    turned_on = copy.deepcopy(domain_yaml)
    turned_on["slots"]["privacy_notice"]["initial_value"] = True
    on = greeting(turned_on)
    assert NOTICE not in off["text"]
    assert on["text"] == off["text"] + (
        "\n\n🔒 Usamos seus dados só para este atendimento e apagamos a conversa 90 dias após "
        "sua última mensagem. " + NOTICE
    )
    assert on["buttons"] == off["buttons"] and len(off["buttons"]) == 6
