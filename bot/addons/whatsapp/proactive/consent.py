"""Consent to campaigns: stop words, resume words and Meta's own opt-out signals.

A citizen who writes only a stop word (``SAIR``, ``PARAR``, ``CANCELAR`` by default,
``WPP_STOP_WORDS``; case, accents and punctuation ignored) is opted out of campaigns and
told how to come back; a resume word (``VOLTAR``, ``WPP_RESUME_WORDS``) opts them in again.
The word is the whole message, so "quero cancelar meu agendamento" still reaches the bot.
Meta's ``user_preferences`` (marketing ``stop`` / ``resume``) and a send refused with
131050 (the citizen stopped marketing messages) record the same opt-out.

Opt-outs are stored under every identifier known for the citizen (phone, BSUID and the
conversation key), so a campaign addressed by any of them skips them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Final, Literal

STOP_REPLY: Final = (
    "Pronto: você não vai mais receber nossas campanhas por aqui. "
    "Para voltar a receber, envie {resume}."
)
RESUME_REPLY: Final = "Pronto: você voltou a receber nossas campanhas. Para sair, envie {stop}."

Choice = Literal["stop", "resume"]


def fold(text: str) -> str:
    """Upper case without accents or surrounding punctuation: "Sair!" and "sáir" ▸ "SAIR"."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return plain.strip().strip(".!?,;:¡¿\"'()").strip().upper()


def words(setting: str) -> frozenset[str]:
    """A comma-separated setting as folded words."""
    return frozenset(fold(word) for word in setting.split(",") if fold(word))


def consent_choice(text: str, stop: Iterable[str], resume: Iterable[str]) -> Choice | None:
    """What a message's whole text asks for, if it is a stop or a resume word."""
    folded = fold(text)
    if folded in set(stop):
        return "stop"
    if folded in set(resume):
        return "resume"
    return None


def reply_for(choice: Choice, stop_words: str, resume_words: str) -> str:
    """The confirmation, naming the first word that undoes it."""
    stop = next(iter(w.strip() for w in stop_words.split(",") if w.strip()), "SAIR")
    resume = next(iter(w.strip() for w in resume_words.split(",") if w.strip()), "VOLTAR")
    template = STOP_REPLY if choice == "stop" else RESUME_REPLY
    return template.format(stop=stop.upper(), resume=resume.upper())
