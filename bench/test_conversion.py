"""Conversion cost per response (``make bench`` runs this with pytest-benchmark).

Each response is timed from the Rasa response dict to the JSON the Graph API receives
(``convert_response`` + ``cloud_body`` + ``json.dumps``); the baseline, measured in the
same run, is ``json.dumps`` of those same bodies alone — the serialisation any connector
pays. ``python -m bench`` reports both and their ratio.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.addons.whatsapp.outbound.convert import ConversionOptions, convert_response
from bot.addons.whatsapp.providers.cloud.bodies import cloud_body

OPTIONS = ConversionOptions()
TO = "5561999990000"
WORDS = "A Prefeitura de Nova Aurora informa que o IPTU pode ser pago em cota única. "
RESPONSES: dict[str, dict[str, Any]] = {
    "text": {"text": "Olá! Sou o assistente virtual da Prefeitura de Nova Aurora."},
    "3 buttons": {
        "text": "Esta resposta ajudou?",
        "buttons": [
            {"title": "Sim", "payload": "/affirm"},
            {"title": "Não", "payload": "/deny"},
            {"title": "Falar com atendente", "payload": "/human"},
        ],
    },
    "10-row list": {
        "text": "Escolha um serviço:",
        "buttons": [
            {"title": f"Serviço número {i}", "payload": f'/choose_service{{"service":"s{i}"}}'}
            for i in range(10)
        ],
    },
    "10,000-character text": {"text": (WORDS * 140)[:10_000]},
}


def wire(response: dict[str, Any]) -> list[bytes]:
    conversion = convert_response(response, OPTIONS)
    return [json.dumps(cloud_body(TO, m)).encode() for m in conversion.messages]


@pytest.mark.parametrize("kind", list(RESPONSES))
def test_conversion(benchmark: Any, kind: str) -> None:
    benchmark.group = kind
    out = benchmark(wire, RESPONSES[kind])
    assert out  # converted into at least one message
    if kind == "10,000-character text":
        assert len(out) == 3  # 4,096 characters at most per message


@pytest.mark.parametrize("kind", list(RESPONSES))
def test_serialisation_baseline(benchmark: Any, kind: str) -> None:
    benchmark.group = kind
    bodies = [cloud_body(TO, m) for m in convert_response(RESPONSES[kind], OPTIONS).messages]
    benchmark(lambda: [json.dumps(b).encode() for b in bodies])
