"""The NLU held-out set stays held out: no phrase of it is a training example."""

from __future__ import annotations

from pathlib import Path

from knowledge.index import TOKEN_RE, fold
from scripts.eval import load_phrases

ROOT = Path(__file__).resolve().parents[1]


def normalise(text: str) -> str:
    """Case, accents and punctuation ignored: "Não, obrigado!" is "nao obrigado"."""
    return " ".join(TOKEN_RE.findall(fold(text)))


def test_no_held_out_phrase_is_a_training_example() -> None:
    training = {normalise(p.text) for p in load_phrases(ROOT / "data" / "nlu.yml")}
    held_out = load_phrases(ROOT / "tests" / "nlu_holdout.yml")
    overlap = [p.text for p in held_out if normalise(p.text) in training]
    assert overlap == []


# Intents the channel hands to the bot as /intent{…} (a handoff, a reaction, a deleted or
# edited message, a call permission, a voice note) or a button sends (the satisfaction
# answer after a handoff); citizens do not type them.
CHANNEL_INTENTS = {
    "handoff_started",
    "handoff_ended",
    "handoff_rating",
    "react",
    "message_deleted",
    "message_edited",
    "call_permission_reply",
    "voice_confirm",
    "voice_rejected",
    "voice_failed",
}


def test_the_held_out_set_has_both_splits_for_every_intent() -> None:
    held_out = load_phrases(ROOT / "tests" / "nlu_holdout.yml")
    by_split: dict[str, set[str]] = {"tune": set(), "final": set()}
    for phrase in held_out:
        by_split[phrase.split].add(phrase.intent)
    training = {p.intent for p in load_phrases(ROOT / "data" / "nlu.yml")}
    typed = training - CHANNEL_INTENTS
    assert by_split["tune"] == by_split["final"] == typed
