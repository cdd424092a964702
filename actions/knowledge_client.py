"""Client of the knowledge API: one pooled aiohttp session, a timeout, typed outcomes.

Contract: ``POST {KNOWLEDGE_API_URL}`` JSON ``{question, sender_id, language}`` ▸ ``200
{"answer", "sources": [{"title", "url"}], "score"}``; 404 or an empty answer means "no
answer". The question and answer field names are settings, so a FAQ API such as
``POST /ask-question-ultra {"question"} ▸ {"answer"}`` plugs in without code.

``sender_id`` is a pseudonym, not the citizen's phone number or BSUID (LGPD: minimisation):
an HMAC-SHA256 of the conversation key under ``PRIVACY_PSEUDONYM_KEY``, the same for one
citizen on every question, so the API can still tell a follow-up from a new asker. Without
that key each action-server process draws a random one at start (pseudonyms then change
at restart and differ between replicas). ``KNOWLEDGE_SEND_SENDER_ID=true`` sends the real
id instead, for an API the operator is entitled to give it to.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

logger = logging.getLogger(__name__)

PSEUDONYM_KEY_MIN_LENGTH = 16


def pseudonym(key: bytes, sender_id: str) -> str:
    """The citizen's id as the knowledge API sees it: ``p-`` and 32 hex digits of
    HMAC-SHA256(key, sender_id). Pure: the same key and id always give the same pseudonym."""
    digest = hmac.new(key, sender_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return "p-" + digest[:32]


class KnowledgeConfigurationError(Exception):
    """A knowledge setting is invalid; the message names the variable."""


@dataclass(frozen=True)
class KnowledgeSettings:
    url: str = "http://localhost:5057/ask"
    token: str = field(default="", repr=False)
    timeout: float = 8.0
    question_field: str = "question"
    answer_field: str = "answer"
    language: str = "pt-BR"
    # Keyed hash of the sender instead of the sender (module docstring).
    pseudonym_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    send_sender_id: bool = False

    def sender_for(self, sender_id: str) -> str:
        """What the API receives as ``sender_id``: a pseudonym unless the operator opted in."""
        return sender_id if self.send_sender_id else pseudonym(self.pseudonym_key, sender_id)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KnowledgeSettings:
        """The settings from the environment.

        Raises:
            KnowledgeConfigurationError: ``PRIVACY_PSEUDONYM_KEY`` is set but shorter than
                16 characters (a short key lets anyone who knows the phone numbers guess
                the pseudonyms).
        """
        env = os.environ if environ is None else environ
        key = env.get("PRIVACY_PSEUDONYM_KEY", "")
        if key and len(key) < PSEUDONYM_KEY_MIN_LENGTH:
            raise KnowledgeConfigurationError(
                f"PRIVACY_PSEUDONYM_KEY must be at least {PSEUDONYM_KEY_MIN_LENGTH} characters"
            )
        keyed = {"pseudonym_key": key.encode("utf-8")} if key else {}
        if not key:
            logger.info(
                "PRIVACY_PSEUDONYM_KEY is not set: the knowledge API's pseudonyms change when "
                "this process restarts"
            )
        send = env.get("KNOWLEDGE_SEND_SENDER_ID", "false").strip().lower() in ("1", "true", "yes")
        return cls(
            send_sender_id=send,
            **keyed,
            url=env.get("KNOWLEDGE_API_URL", cls.url),
            token=env.get("KNOWLEDGE_API_TOKEN", ""),
            timeout=float(env.get("KNOWLEDGE_TIMEOUT", cls.timeout)),
            question_field=env.get("KNOWLEDGE_QUESTION_FIELD", cls.question_field),
            answer_field=env.get("KNOWLEDGE_ANSWER_FIELD", cls.answer_field),
            language=env.get("KNOWLEDGE_LANGUAGE", cls.language),
        )


@dataclass(frozen=True)
class Source:
    title: str
    url: str


@dataclass(frozen=True)
class Answer:
    text: str
    sources: tuple[Source, ...] = ()


class NoAnswer(Exception):
    """The knowledge API has no answer for the question (404 or an empty answer)."""


class KnowledgeUnavailable(Exception):
    """The knowledge API could not be asked: timeout, refused, 5xx or bad JSON."""


class KnowledgeClient:
    """Asks the knowledge API; the aiohttp session is created once and reused."""

    def __init__(self, settings: KnowledgeSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = (
                {"Authorization": f"Bearer {self.settings.token}"} if self.settings.token else {}
            )
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=self.settings.timeout)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def ask(self, question: str, sender_id: str) -> Answer:
        """The answer to ``question``.

        Raises:
            NoAnswer: when the API has none.
            KnowledgeUnavailable: when the API cannot be used; the message says why.
        """
        s = self.settings
        body = {
            s.question_field: question,
            "sender_id": s.sender_for(sender_id),
            "language": s.language,
        }
        try:
            async with self._get_session().post(s.url, json=body) as response:
                if response.status == 404:
                    raise NoAnswer()
                if response.status >= 400:
                    raise KnowledgeUnavailable(f"HTTP {response.status}")
                text = await response.text()
        except asyncio.TimeoutError as exc:
            raise KnowledgeUnavailable(f"timeout after {s.timeout}s") from exc
        except aiohttp.ClientError as exc:
            raise KnowledgeUnavailable(f"{type(exc).__name__}: {exc}") from exc
        try:
            data: Any = json.loads(text)
        except ValueError as exc:
            raise KnowledgeUnavailable("response is not JSON") from exc
        if not isinstance(data, dict):
            raise KnowledgeUnavailable("response is not a JSON object")
        answer = data.get(s.answer_field)
        if not isinstance(answer, str) or not answer.strip():
            raise NoAnswer()
        sources = tuple(
            Source(str(item.get("title") or item.get("url")), str(item["url"]))
            for item in data.get("sources") or []
            if isinstance(item, dict) and item.get("url")
        )
        return Answer(answer.strip(), sources)
