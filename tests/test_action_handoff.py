"""action_handoff: office hours decide between asking the channel for a handoff (with the
last turns as the agent's note) and the contact text; no Chatwoot secret is needed."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import (
    DAYS,
    ActionHandoff,
    ActionHandoffSurvey,
    is_open,
    parse_office_hours,
    survey_on,
    transcript,
)
from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.errors import ConfigurationError

ZONE = ZoneInfo("America/Sao_Paulo")
HOURS = parse_office_hours("mon-fri 08:00-18:00; sat 08:00-12:00")


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 3, 2, 8, 0), True),  # Monday, opening
        (datetime(2026, 3, 2, 17, 59), True),
        (datetime(2026, 3, 2, 18, 0), False),  # closing
        (datetime(2026, 3, 7, 11, 0), True),  # Saturday morning
        (datetime(2026, 3, 7, 13, 0), False),
        (datetime(2026, 3, 8, 10, 0), False),  # Sunday
    ],
)
def test_office_hours(moment: datetime, expected: bool) -> None:
    assert is_open(HOURS, moment) is expected


def test_no_office_hours_means_always_open_and_bad_ones_are_named() -> None:
    assert is_open(parse_office_hours(""), datetime(2026, 3, 8, 3, 0))
    with pytest.raises(ValueError, match="HANDOFF_OFFICE_HOURS: cannot read 'mon-fry 8-18'"):
        parse_office_hours("mon-fry 8-18")


def test_the_transcript_keeps_the_last_turns_of_both_sides() -> None:
    events: list[dict[str, Any]] = [{"event": "user", "text": f"pergunta {n}"} for n in range(12)]
    events.insert(3, {"event": "bot", "text": "resposta"})
    events.append({"event": "slot", "name": "x", "value": 1})
    assert transcript(events, turns=3) == (
        "Conversa com o assistente virtual (últimas mensagens):\n"
        "Cidadão: pergunta 9\nCidadão: pergunta 10\nCidadão: pergunta 11"
    )


def _tracker(events: list[dict[str, Any]]) -> Tracker:
    return Tracker("5561999990001", {}, {"text": "atendente"}, events, False, None, {}, "")


async def test_inside_office_hours_the_channel_is_asked_with_the_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HANDOFF_OFFICE_HOURS", "")
    dispatcher = CollectingDispatcher()
    events = [{"event": "user", "text": "quero um atendente"}]
    result = await ActionHandoff().run(dispatcher, _tracker(events), {})
    assert result == [{"event": "slot", "timestamp": None, "name": "handoff", "value": "requested"}]
    assert dispatcher.messages == [
        {
            "text": None,
            "buttons": [],
            "elements": [],
            "custom": {
                "handoff": {
                    "note": "Conversa com o assistente virtual (últimas mensagens):\n"
                    "Cidadão: quero um atendente"
                }
            },
            "template": None,
            "response": None,
            "image": None,
            "attachment": None,
        }
    ]


async def test_outside_office_hours_nothing_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    another_day = DAYS[(datetime.now(ZoneInfo("UTC")).weekday() + 3) % 7]
    monkeypatch.setenv("HANDOFF_OFFICE_HOURS", f"{another_day} 00:00-23:59")
    monkeypatch.setenv("HANDOFF_TIMEZONE", "UTC")
    dispatcher = CollectingDispatcher()
    result = await ActionHandoff().run(dispatcher, _tracker([]), {})
    assert result == [{"event": "slot", "timestamp": None, "name": "handoff", "value": "closed"}]
    assert dispatcher.messages == []


def test_chatwoot_settings_are_all_required_once_its_url_is_set() -> None:
    env = {"WPP_AUTHORIZATION_TOKEN": "t", "WPP_VERIFY_TOKEN": "v"}
    env |= {"WPP_PHONE_NUMBER_IDENTIFIER": "1", "WPP_APP_SECRET": "s"}
    assert WhatsAppSettings.from_credentials({}, env).chatwoot_url == ""
    env |= {"CHATWOOT_URL": "https://chat.example/", "CHATWOOT_INBOX_ID": "3"}
    with pytest.raises(ConfigurationError) as raised:
        WhatsAppSettings.from_credentials({}, env)
    assert str(raised.value) == (
        "The WhatsApp channel (cloud) cannot start: set the environment variables "
        "CHATWOOT_ACCOUNT_ID, CHATWOOT_API_TOKEN, CHATWOOT_WEBHOOK_SECRET "
        "(see variables.env.example)"
    )


@pytest.mark.parametrize(("value", "expected"), [(None, False), ("false", False), ("true", True)])
async def test_the_satisfaction_question_is_off_unless_the_operator_turns_it_on(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv("HANDOFF_SATISFACTION_SURVEY", raising=False)
    else:
        monkeypatch.setenv("HANDOFF_SATISFACTION_SURVEY", value)
    dispatcher = CollectingDispatcher()
    result = await ActionHandoffSurvey().run(dispatcher, _tracker([]), {})
    assert result == [
        {"event": "slot", "timestamp": None, "name": "handoff_survey", "value": expected}
    ]
    assert dispatcher.messages == []


def test_a_misspelt_satisfaction_setting_is_named() -> None:
    with pytest.raises(ValueError, match="HANDOFF_SATISFACTION_SURVEY: expected true or false"):
        survey_on({"HANDOFF_SATISFACTION_SURVEY": "sim"})
