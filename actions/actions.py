"""action_ask_knowledge: open questions go to the knowledge API; the answer comes back.

The action sends the answer itself (text plus up to 3 source links) and sets the slot
``knowledge_result`` (``answered``, ``no_answer`` or ``unavailable``); rules in
``data/rules.yml`` choose the follow-up (the "was this helpful?" buttons, the menu and a
human contact, or an apology). The conversation never goes silent.
"""

from __future__ import annotations

import logging
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
            return [SlotSet("knowledge_result", "no_answer")]
        except KnowledgeUnavailable as exc:
            logger.error("Knowledge API unavailable: %s", exc)
            return [SlotSet("knowledge_result", "unavailable")]
        dispatcher.utter_message(text=answer_text(answer))
        return [SlotSet("knowledge_result", "answered")]
