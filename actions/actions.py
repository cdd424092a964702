"""action_ask_knowledge: open questions go to the knowledge API; the answer comes back.

The action sends the answer itself (text plus up to 3 source links) and sets the slot
``knowledge_result`` (``answered``, ``no_answer`` or ``unavailable``); rules in
``data/rules.yml`` choose the follow-up (the "was this helpful?" buttons, the menu and a
human contact, or an apology). The conversation never goes silent.

It also counts "no answer" in a row in the slot ``knowledge_misses``: the
``KNOWLEDGE_HANDOFF_AFTER``-th (default 2; 0 = never) sets ``knowledge_result`` to
``handoff`` instead, and a rule hands the citizen to a person (``action_handoff``). An
answer resets the count; "unavailable" leaves it alone (the API failing says nothing
about the question).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.knowledge_client import (
    Answer,
    KnowledgeClient,
    KnowledgeSettings,
    KnowledgeUnavailable,
    NoAnswer,
)

logger = logging.getLogger(__name__)
MAX_SOURCES = 3
DEFAULT_HANDOFF_AFTER = 2


def handoff_after(environ: Mapping[str, str]) -> int:
    """``KNOWLEDGE_HANDOFF_AFTER``: how many "no answer" in a row hand off (0 = never)."""
    raw = environ.get("KNOWLEDGE_HANDOFF_AFTER", "").strip()
    try:
        value = int(raw) if raw else DEFAULT_HANDOFF_AFTER
    except ValueError as exc:
        raise ValueError(f"KNOWLEDGE_HANDOFF_AFTER: not a whole number: {raw!r}") from exc
    if value < 0:
        raise ValueError(f"KNOWLEDGE_HANDOFF_AFTER: must be 0 or more, got {value}")
    return value


def after_no_answer(misses: Any, limit: int) -> list[dict[str, Any]]:
    """The slots after one more "no answer", ``misses`` of them in a row before (pure)."""
    count = int(float(misses or 0)) + 1
    if limit and count >= limit:
        return [SlotSet("knowledge_result", "handoff"), SlotSet("knowledge_misses", 0.0)]
    return [SlotSet("knowledge_result", "no_answer"), SlotSet("knowledge_misses", float(count))]


def answer_text(answer: Answer) -> str:
    """The answer followed by up to three source links."""
    if not answer.sources:
        return answer.text
    links = "\n".join(f"• {s.title}: {s.url}" for s in answer.sources[:MAX_SOURCES])
    return f"{answer.text}\n\nFontes:\n{links}"


class ActionAskKnowledge(Action):
    """Relays the user's question to the knowledge API."""

    client: KnowledgeClient | None = None

    def name(self) -> str:
        return "action_ask_knowledge"

    def get_client(self) -> KnowledgeClient:
        # One client (and so one pooled session) per action-server process.
        if self.client is None:
            type(self).client = KnowledgeClient(KnowledgeSettings.from_env())
        assert self.client is not None
        return self.client

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        question = (tracker.latest_message.get("text") or "").strip()
        try:
            answer = await self.get_client().ask(question, tracker.sender_id)
        except NoAnswer:
            limit = handoff_after(os.environ)
            return after_no_answer(tracker.get_slot("knowledge_misses"), limit)
        except KnowledgeUnavailable as exc:
            logger.error("Knowledge API unavailable: %s", exc)
            return [SlotSet("knowledge_result", "unavailable")]
        dispatcher.utter_message(text=answer_text(answer))
        return [SlotSet("knowledge_result", "answered"), SlotSet("knowledge_misses", 0.0)]
