"""POST /webhooks/whatsapp/notify and consent words, over real HTTP: the channel served as
Rasa serves it, sending to the fake Graph API, with a real Rasa tracker store and NLG."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from rasa.core.lock_store import InMemoryLockStore
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered

from bot.addons.whatsapp.providers.cloud.client import CloudProvider
from tests.channel_harness import FakeAgent, Served, serve_channel, settings
from tests.fakes.graph import FakeGraph, graph_error, running_graph
from tests.whatsapp_fixtures import fixture

TOKEN = "test-notify-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CITIZEN = "5561999990001"
DOMAIN = Domain.from_dict(
    {
        "slots": {"protocolo": {"type": "text", "mappings": [{"type": "custom"}]}},
        "responses": {
            "utter_protocolo": [{"text": "Seu protocolo {protocolo} foi atualizado."}],
            "utter_lembrete_iptu": [
                {
                    "custom": {
                        "whatsapp": {
                            "type": "template",
                            "template": {"name": "lembrete_iptu", "language": {"code": "pt_BR"}},
                        }
                    }
                }
            ],
        },
    }
)


class RasaAgent(FakeAgent):
    """The fake agent with Rasa's own tracker store, lock store and response generator."""

    def __init__(self) -> None:
        super().__init__()
        self.trackers = InMemoryTrackerStore(DOMAIN)
        self.lock_store = InMemoryLockStore()
        self.nlg = TemplatedNaturalLanguageGenerator(DOMAIN.responses)

    @property
    def tracker_store(self) -> Any:
        return self.trackers

    async def said(self, sender: str, seconds_ago: float) -> None:
        tracker = await self.trackers.get_or_create_tracker(sender)
        tracker.update(UserUttered("oi", timestamp=time.time() - seconds_ago))
        await self.trackers.save(tracker)


@asynccontextmanager
async def stack(**overrides: Any) -> AsyncIterator[tuple[Served, FakeGraph, RasaAgent]]:
    async with running_graph() as graph:
        options = {"notify_token": TOKEN, **overrides}
        provider = CloudProvider.from_settings(
            settings(api_base_url=graph.url, max_retries=0, **options)
        )
        agent = RasaAgent()
        async with serve_channel(
            agent, api_base_url=graph.url, transport=provider, max_retries=0, **options
        ) as served:
            yield served, graph, agent


async def notify(served: Served, body: Any, headers: dict[str, str] | None = None) -> Any:
    async with served.http.post(
        f"{served.url}/webhooks/whatsapp/notify",
        json=body,
        headers=AUTH if headers is None else headers,
    ) as answer:
        return answer.status, await answer.json()


async def notification(served: Served, id_: str) -> Any:
    async with served.http.get(
        f"{served.url}/webhooks/whatsapp/notify/{id_}", headers=AUTH
    ) as answer:
        return answer.status, await answer.json()


def status_webhook(wamid: str, status: str, errors: list[dict[str, Any]] | None = None) -> Any:
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": "1798000000",
        "recipient_id": CITIZEN,
    }
    if errors:
        item["errors"] = errors
    payload = fixture("status_failed_131026")
    payload["entry"][0]["changes"][0]["value"]["statuses"] = [item]
    return payload


TEMPLATE_REQUEST = {
    "recipient": CITIZEN,
    "template": {"name": "protocolo_atualizado", "language": "pt_BR", "params": ["12345"]},
}
TEMPLATE_BODY = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": f"+{CITIZEN}",
    "type": "template",
    "template": {
        "name": "protocolo_atualizado",
        "language": {"code": "pt_BR"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "12345"}]}],
    },
}


async def test_without_a_configured_token_every_notification_is_refused() -> None:
    async with stack(notify_token="") as (served, graph, _):
        assert await notify(served, TEMPLATE_REQUEST) == (
            403,
            {"error": "notify_disabled", "detail": "set WPP_NOTIFY_TOKEN to enable it"},
        )
        assert graph.sent == []


async def test_a_missing_or_wrong_token_is_refused() -> None:
    async with stack() as (served, graph, _):
        assert await notify(served, TEMPLATE_REQUEST, headers={}) == (
            401,
            {"error": "token_missing"},
        )
        wrong = {"Authorization": "Bearer nope"}
        assert await notify(served, TEMPLATE_REQUEST, headers=wrong) == (
            403,
            {"error": "token_invalid"},
        )
        assert graph.sent == []


async def test_a_template_goes_out_is_written_to_the_conversation_and_follows_its_statuses() -> (
    None
):
    async with stack() as (served, graph, agent):
        status, answer = await notify(served, TEMPLATE_REQUEST)
        assert (status, answer["status"], answer["wamids"]) == (200, "sent", ["wamid.OUT0001"])
        assert graph.sent == [TEMPLATE_BODY]
        tracker = await agent.trackers.retrieve(CITIZEN)
        assert tracker is not None
        last = tracker.events[-1]
        assert (last.type_name, last.text, last.metadata) == (
            "bot",
            "[template protocolo_atualizado]",
            {"notification": answer["id"], "utter_action": "protocolo_atualizado"},
        )
        assert await notification(served, answer["id"]) == (
            200,
            {"id": answer["id"], "status": "sent", "wamid": "wamid.OUT0001", "error": None},
        )
        for state in ("read", "delivered"):  # "delivered" arrives late: read stays
            assert (await served.post(status_webhook("wamid.OUT0001", state))).status == 200
        assert (await notification(served, answer["id"]))[1]["status"] == "read"


async def test_a_failed_status_gives_the_whatsapp_error_code_and_title() -> None:
    async with stack() as (served, _, _):
        _, answer = await notify(served, TEMPLATE_REQUEST)
        error = {"code": 131026, "title": "Message undeliverable"}
        await served.post(status_webhook(answer["wamids"][0], "failed", [error]))
        assert await notification(served, answer["id"]) == (
            200,
            {"id": answer["id"], "status": "failed", "wamid": "wamid.OUT0001", "error": error},
        )


async def test_a_send_refused_by_whatsapp_is_answered_as_failed_with_its_code() -> None:
    async with stack() as (served, graph, _):
        graph.fail(400, graph_error("(#132001) Template name does not exist", 132001))
        status, answer = await notify(served, TEMPLATE_REQUEST)
        assert (status, answer["status"], answer["error"]["code"]) == (200, "failed", 132001)
        assert (await notification(served, answer["id"]))[1]["status"] == "failed"


async def test_a_response_outside_the_24_hour_window_is_refused_and_nothing_sent() -> None:
    async with stack() as (served, graph, agent):
        await agent.said(CITIZEN, seconds_ago=25 * 3600)
        request = {"recipient": CITIZEN, "response": "utter_protocolo", "slots": {"protocolo": "9"}}
        status, answer = await notify(served, request)
        assert (status, answer["error"]) == (409, "outside_service_window")
        assert graph.sent == []


async def test_a_response_inside_the_window_is_rendered_with_its_slots() -> None:
    async with stack() as (served, graph, agent):
        await agent.said(CITIZEN, seconds_ago=3600)
        request = {"recipient": CITIZEN, "response": "utter_protocolo", "slots": {"protocolo": "9"}}
        status, answer = await notify(served, request)
        assert (status, answer["status"]) == (200, "sent")
        assert graph.sent == [
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": f"+{CITIZEN}",
                "type": "text",
                "text": {"body": "Seu protocolo 9 foi atualizado.", "preview_url": False},
            }
        ]
        tracker = await agent.trackers.retrieve(CITIZEN)
        assert tracker is not None
        assert tracker.get_slot("protocolo") == "9"
        assert [e.type_name for e in list(tracker.events)[-3:]] == ["slot", "action", "bot"]


async def test_a_template_declared_as_a_domain_response_goes_outside_the_window() -> None:
    async with stack() as (served, graph, agent):
        await agent.said(CITIZEN, seconds_ago=30 * 3600)
        status, answer = await notify(
            served, {"recipient": CITIZEN, "response": "utter_lembrete_iptu"}
        )
        assert (status, answer["status"]) == (200, "sent")
        assert graph.sent == [
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": f"+{CITIZEN}",
                "type": "template",
                "template": {"name": "lembrete_iptu", "language": {"code": "pt_BR"}},
            }
        ]


async def test_an_unknown_response_or_a_bad_body_is_a_400_with_the_reason() -> None:
    async with stack() as (served, graph, agent):
        await agent.said(CITIZEN, seconds_ago=60)
        assert await notify(served, {"recipient": CITIZEN, "response": "utter_nada"}) == (
            400,
            {"error": "unknown_response", "detail": "utter_nada"},
        )
        assert await notify(served, {"recipient": CITIZEN}) == (
            400,
            {"error": "invalid_request", "detail": "give exactly one of 'template' and 'response'"},
        )
        assert graph.sent == []


async def test_a_paused_template_is_refused_until_approved_again() -> None:
    async with stack() as (served, graph, _):
        paused = fixture("webhook_message_template_status_paused")
        assert (await served.post(paused)).status == 200
        request = {
            "recipient": CITIZEN,
            "template": {"name": "lembrete_agendamento", "language": "pt_BR"},
        }
        status, answer = await notify(served, request)
        assert (status, answer["error"]) == (409, "template_paused")
        assert graph.sent == []


async def test_a_marketing_template_to_a_citizen_who_stopped_marketing_is_refused() -> None:
    async with stack() as (served, graph, _):
        assert (await served.post(fixture("webhook_user_preferences_marketing_stop"))).status == 200
        marketing = {
            "recipient": "5561987654321",
            "template": {"name": "feira", "language": "pt_BR", "category": "marketing"},
        }
        status, answer = await notify(served, marketing)
        assert (status, answer["error"]) == (409, "opted_out")
        utility = {"recipient": "5561987654321", "template": {"name": "iptu", "language": "pt_BR"}}
        assert (await notify(served, utility))[1]["status"] == "sent"
        assert [body["template"]["name"] for body in graph.sent] == ["iptu"]


def text_webhook(text: str, wamid: str) -> Any:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "100000000000001",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550001111",
                                "phone_number_id": "100000000000002",
                            },
                            "contacts": [{"profile": {"name": "Ana"}, "wa_id": CITIZEN}],
                            "messages": [
                                {
                                    "from": CITIZEN,
                                    "id": wamid,
                                    "timestamp": "1798000000",
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


async def test_a_stop_word_opts_out_of_campaigns_and_says_how_to_come_back() -> None:
    async with stack() as (served, graph, agent):
        await served.post(text_webhook("Sair!", "wamid.IN1"))
        await served.settle()
        store = await served.channel.proactive.store()
        assert await asyncio.to_thread(store.opted_out, [CITIZEN])
        assert agent.messages == []  # the bot's turn did not run
        await served.post(text_webhook("voltar", "wamid.IN2"))
        await served.settle()
        assert not await asyncio.to_thread(store.opted_out, [CITIZEN])
        assert [body["text"]["body"] for body in graph.sent] == [
            "Pronto: você não vai mais receber nossas campanhas por aqui. "
            "Para voltar a receber, envie VOLTAR.",
            "Pronto: você voltou a receber nossas campanhas. Para sair, envie SAIR.",
        ]


async def test_a_stop_word_inside_a_sentence_reaches_the_bot() -> None:
    async with stack() as (served, _, agent):
        await served.post(text_webhook("quero cancelar meu agendamento", "wamid.IN3"))
        await served.settle()
        store = await served.channel.proactive.store()
        assert not await asyncio.to_thread(store.opted_out, [CITIZEN])
        assert [m.text for m in agent.messages] == ["quero cancelar meu agendamento"]


async def test_error_131050_opts_the_citizen_out() -> None:
    async with stack() as (served, _, _):
        error = {"code": 131050, "title": "Unable to deliver the message"}
        await served.post(status_webhook("wamid.X", "failed", [error]))
        store = await served.channel.proactive.store()
        assert await asyncio.to_thread(store.opted_out, [CITIZEN])


async def test_status_webhooks_still_answer_200_when_the_database_is_unreachable() -> None:
    async with stack(proactive_db_url="postgresql://nobody@127.0.0.1:1/none") as (served, _, _):
        answer = await served.post(status_webhook("wamid.Y", "delivered"))
        assert answer.status == 200


async def test_with_the_ingress_in_front_it_records_the_statuses_of_notifications(
    tmp_path: Path,
) -> None:
    from tests.test_ingress import serve_ingress

    url = f"sqlite:///{tmp_path / 'proactive.db'}"  # one database, two processes' code
    async with stack(proactive_db_url=url) as (served, _, _):
        _, answer = await notify(served, TEMPLATE_REQUEST)
        async with serve_ingress(served.url, proactive_db_url=url) as ingress:
            assert (
                await ingress.post(status_webhook(answer["wamids"][0], "delivered"))
            ).status == 200
        assert (await notification(served, answer["id"]))[1]["status"] == "delivered"
