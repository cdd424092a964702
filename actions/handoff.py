"""action_handoff: a citizen asked for a person.

Inside office hours the action asks the WhatsApp channel for a handoff — a custom
response ``{"handoff": {"note": <the last turns>}}`` — and sets ``handoff`` to
``requested``; the channel opens the Chatwoot conversation with that note, then runs
``/handoff_started`` (the bot says it is transferring) and pauses the conversation, or
runs ``/handoff_ended{"handoff_outcome": "unavailable"}`` when Chatwoot cannot be reached.
Outside office hours it sets ``handoff`` to ``closed`` and the rules give the contact text.

``action_handoff_survey`` runs after an agent resolved the conversation: it sets
``handoff_survey`` from ``HANDOFF_SATISFACTION_SURVEY`` (default off), and the rules ask
the satisfaction question (``utter_handoff_satisfaction``) when it is on.

The action server never talks to Chatwoot, so it holds none of Chatwoot's secrets: its
only settings are the office hours (``HANDOFF_OFFICE_HOURS``, e.g. ``mon-fri
08:00-18:00; sat 08:00-12:00``, empty = always open) and their time zone
(``HANDOFF_TIMEZONE``, default ``America/Sao_Paulo``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

logger = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_HOURS = "mon-fri 08:00-18:00"
TRANSCRIPT_TURNS = 10


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time


def _days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        a = DAYS.index(first.strip())
        b = DAYS.index(last.strip()) if last else a
        days.update(range(a, b + 1))
    return frozenset(days)


def parse_office_hours(spec: str) -> tuple[Window, ...]:
    """``"mon-fri 08:00-18:00; sat 08:00-12:00"`` ▸ windows; ValueError naming the part."""
    windows = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        try:
            days, hours = part.split()
            start, end = hours.split("-")
            windows.append(Window(_days(days), time.fromisoformat(start), time.fromisoformat(end)))
        except ValueError as exc:
            raise ValueError(f"HANDOFF_OFFICE_HOURS: cannot read {part!r}") from exc
    return tuple(windows)


def is_open(windows: Iterable[Window], now: datetime) -> bool:
    """Whether ``now`` (local time) falls in a window; no windows means always open."""
    windows = tuple(windows)
    if not windows:
        return True
    return any(w.start <= now.time() < w.end and now.weekday() in w.days for w in windows)


def transcript(events: Iterable[Mapping[str, Any]], turns: int = TRANSCRIPT_TURNS) -> str:
    """The last ``turns`` texts of the conversation, for the agent's private note."""
    lines = []
    for event in events:
        text = str(event.get("text") or "").strip()
        if event.get("event") == "user" and text:
            lines.append(f"Cidadão: {text}")
        elif event.get("event") == "bot" and text:
            lines.append(f"Assistente: {text}")
    if not lines:
        return "Conversa transferida pelo assistente virtual (sem mensagens anteriores)."
    return "Conversa com o assistente virtual (últimas mensagens):\n" + "\n".join(lines[-turns:])


def survey_on(environ: Mapping[str, str]) -> bool:
    """``HANDOFF_SATISFACTION_SURVEY``: ``true``/``false`` (default ``false``)."""
    raw = environ.get("HANDOFF_SATISFACTION_SURVEY", "").strip().lower()
    if raw in ("", "false", "0", "no", "off"):
        return False
    if raw in ("true", "1", "yes", "on"):
        return True
    raise ValueError(f"HANDOFF_SATISFACTION_SURVEY: expected true or false, got {raw!r}")


class ActionHandoffSurvey(Action):
    """Whether to ask the satisfaction question after a resolved handoff (a setting)."""

    def name(self) -> str:
        return "action_handoff_survey"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        return [SlotSet("handoff_survey", survey_on(os.environ))]


class ActionHandoff(Action):
    """Asks the channel for a handoff to a human agent, inside office hours."""

    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        windows = parse_office_hours(os.environ.get("HANDOFF_OFFICE_HOURS", DEFAULT_HOURS))
        zone = ZoneInfo(os.environ.get("HANDOFF_TIMEZONE", "America/Sao_Paulo"))
        if not is_open(windows, datetime.now(zone)):
            return [SlotSet("handoff", "closed")]
        dispatcher.utter_message(json_message={"handoff": {"note": transcript(tracker.events)}})
        return [SlotSet("handoff", "requested")]
