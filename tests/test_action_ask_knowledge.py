"""action_ask_knowledge against a local knowledge API, for every outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.actions import ActionAskKnowledge, after_no_answer, handoff_after
from actions.knowledge_client import (
    KnowledgeClient,
    KnowledgeConfigurationError,
    KnowledgeSettings,
    pseudonym,
)
from tests.support.stack import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
KEY = b"test-pseudonym-key-0123456789"


@asynccontextmanager
async def knowledge_api(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/ask", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/ask"
    finally:
        await runner.cleanup()


def recorded_tracker(question: str) -> Tracker:
    """A tracker as Rasa sends it after the user asked ``question``."""
    events: list[dict[str, Any]] = [
        {"event": "action", "name": "action_session_start"},
        {"event": "session_started"},
        {"event": "action", "name": "action_listen"},
        {
            "event": "user",
            "text": question,
            "parse_data": {"intent": {"name": "ask_question", "confidence": 0.93}, "entities": []},
        },
    ]
    return Tracker(
        "5561999998888",
        {"knowledge_result": None, "service": None},
        events[-1] | {"intent": {"name": "ask_question", "confidence": 0.93}, "entities": []},
        events,
        False,
        None,
        {},
        "action_listen",
    )


async def run_action(
    url: str, question: str = "como pago o iptu atrasado?", **settings: Any
) -> tuple[list[dict[str, Any]], CollectingDispatcher]:
    action = ActionAskKnowledge()
    settings.setdefault("pseudonym_key", KEY)
    action.client = KnowledgeClient(KnowledgeSettings(url=url, **settings))
    dispatcher = CollectingDispatcher()
    try:
        events = await action.run(dispatcher, recorded_tracker(question), {})
    finally:
        await action.client.close()
    return events, dispatcher


def slot(events: list[dict[str, Any]]) -> Any:
    return [
        e["value"] for e in events if e.get("event") == "slot" and e["name"] == "knowledge_result"
    ]


async def test_an_answer_is_sent_with_up_to_three_sources() -> None:
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(await request.json())
        sources = [{"title": f"Doc {i}", "url": f"https://x.example/{i}"} for i in range(5)]
        return web.json_response({"answer": "Pague pelo portal.", "sources": sources, "score": 7.1})

    async with knowledge_api(handler) as url:
        events, dispatcher = await run_action(url)
    assert seen == [
        {
            "question": "como pago o iptu atrasado?",
            "sender_id": pseudonym(KEY, "5561999998888"),
            "language": "pt-BR",
        }
    ]
    assert slot(events) == ["answered"]
    (message,) = dispatcher.messages
    assert message["text"] == (
        "Pague pelo portal.\n\nFontes:\n• Doc 0: https://x.example/0\n"
        "• Doc 1: https://x.example/1\n• Doc 2: https://x.example/2"
    )


@pytest.mark.parametrize(
    "reply",
    [
        lambda: web.json_response({"answer": "", "sources": []}, status=404),
        lambda: web.json_response({"answer": "   ", "sources": []}),
        lambda: web.json_response({"sources": []}),
    ],
    ids=["404", "empty-answer", "no-answer-field"],
)
async def test_no_answer_sets_no_answer_and_sends_nothing_itself(
    reply: Callable[[], web.Response],
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return reply()

    async with knowledge_api(handler) as url:
        events, dispatcher = await run_action(url)
    assert slot(events) == ["no_answer"] and dispatcher.messages == []


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.json_response({"answer": "tarde demais"})


async def server_error(request: web.Request) -> web.Response:
    return web.json_response({"error": "boom"}, status=500)


async def not_json(request: web.Request) -> web.Response:
    return web.Response(text="<html>oops</html>", content_type="text/html")


@pytest.mark.parametrize(
    ("handler", "cause"),
    [(slow, "timeout"), (server_error, "HTTP 500"), (not_json, "not JSON")],
    ids=["timeout", "500", "bad-json"],
)
async def test_failures_set_unavailable_and_log_the_cause(
    handler: Handler, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with knowledge_api(handler) as url:
        events, dispatcher = await run_action(url, timeout=0.5)
    assert slot(events) == ["unavailable"] and dispatcher.messages == []
    assert cause in caplog.text


async def test_connection_refused_sets_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    events, _ = await run_action(f"http://127.0.0.1:{free_port()}/ask")
    assert slot(events) == ["unavailable"]
    assert "ClientConnectorError" in caplog.text


async def test_field_names_and_bearer_token_are_settings() -> None:
    seen: list[tuple[Any, str | None]] = []

    async def faq(request: web.Request) -> web.Response:
        seen.append((await request.json(), request.headers.get("Authorization")))
        return web.json_response({"resposta": "Sim, pelo portal."})

    async with knowledge_api(faq) as url:
        events, dispatcher = await run_action(
            url, question_field="pergunta", answer_field="resposta", token="s3cret"
        )
    assert seen[0][0]["pergunta"] == "como pago o iptu atrasado?"
    assert seen[0][1] == "Bearer s3cret"
    assert slot(events) == ["answered"] and dispatcher.messages[0]["text"] == "Sim, pelo portal."


async def test_the_knowledge_api_never_sees_the_phone_number_unless_the_operator_opts_in() -> None:
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response({"answer": "Pague pelo portal.", "sources": []})

    async with knowledge_api(handler) as url:
        await run_action(url)
        await run_action(url, pseudonym_key=b"another-key-for-another-deployment")
        await run_action(url, send_sender_id=True)
    senders = [body["sender_id"] for body in seen]
    assert senders[0] == pseudonym(KEY, "5561999998888")
    assert senders[0].startswith("p-") and len(senders[0]) == 34
    assert senders[1] != senders[0] and "5561999998888" not in senders[:2]
    assert senders[2] == "5561999998888"  # KNOWLEDGE_SEND_SENDER_ID=true


def test_the_pseudonym_key_comes_from_the_environment_and_a_short_one_is_refused() -> None:
    key = "a-long-enough-pseudonym-key"
    settings = KnowledgeSettings.from_env({"PRIVACY_PSEUDONYM_KEY": key})
    again = KnowledgeSettings.from_env({"PRIVACY_PSEUDONYM_KEY": key})
    assert settings.sender_for("5561999998888") == again.sender_for("5561999998888")
    assert settings.sender_for("5561999998888") == pseudonym(key.encode(), "5561999998888")
    # Without a key each process draws its own: never the phone, not stable across restarts.
    first, second = KnowledgeSettings.from_env({}), KnowledgeSettings.from_env({})
    assert first.sender_for("5561999998888") != second.sender_for("5561999998888")
    assert KnowledgeSettings.from_env({"KNOWLEDGE_SEND_SENDER_ID": "true"}).send_sender_id
    assert "pseudonym_key" not in repr(settings) and key not in repr(settings)
    with pytest.raises(KnowledgeConfigurationError, match="PRIVACY_PSEUDONYM_KEY"):
        KnowledgeSettings.from_env({"PRIVACY_PSEUDONYM_KEY": "short"})


def _slots(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def test_the_second_no_answer_in_a_row_asks_for_a_person_and_restarts_the_count() -> None:
    first = _slots(after_no_answer(None, 2))
    assert first == {"knowledge_result": "no_answer", "knowledge_misses": 1.0}
    second = _slots(after_no_answer(first["knowledge_misses"], 2))
    assert second == {"knowledge_result": "handoff", "knowledge_misses": 0.0}
    # 0 turns the trigger off: the tenth miss is still a plain "no answer".
    assert _slots(after_no_answer(9.0, 0))["knowledge_result"] == "no_answer"


def test_the_handoff_trigger_is_a_setting_and_a_bad_one_is_named() -> None:
    assert handoff_after({}) == 2
    assert handoff_after({"KNOWLEDGE_HANDOFF_AFTER": "3"}) == 3
    assert handoff_after({"KNOWLEDGE_HANDOFF_AFTER": "0"}) == 0
    with pytest.raises(ValueError, match="KNOWLEDGE_HANDOFF_AFTER: not a whole number: 'two'"):
        handoff_after({"KNOWLEDGE_HANDOFF_AFTER": "two"})
    with pytest.raises(ValueError, match="KNOWLEDGE_HANDOFF_AFTER: must be 0 or more"):
        handoff_after({"KNOWLEDGE_HANDOFF_AFTER": "-1"})


async def test_an_answer_resets_the_no_answer_count() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"answer": "Pague pelo portal.", "sources": []})

    async with knowledge_api(handler) as url:
        events, _ = await run_action(url)
    assert _slots(events) == {"knowledge_result": "answered", "knowledge_misses": 0.0}
