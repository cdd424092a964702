"""WhatsApp 2026, driven by the payload files: usernames and BSUIDs, which webhook fields
are answered, conversation routing, preferences, operator alerts and pricing."""

from __future__ import annotations

import asyncio
import copy
import datetime
import logging
from typing import Any

import aiohttp
import pytest

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.errors import DECISIONS, WhatsAppApiError
from bot.addons.whatsapp.inbound.events import (
    Citizen,
    FieldEvent,
    Handover,
    IdentityUpdate,
    InboundMessage,
    OperatorAlert,
    PreferenceUpdate,
    Pricing,
    Standby,
    StatusUpdate,
    message_from_record,
    message_record,
)
from bot.addons.whatsapp.inbound.parse import cloud_changes, parse_changes, parse_values
from bot.addons.whatsapp.inbound.routing import create_state
from bot.addons.whatsapp.inbound.to_rasa import whatsapp_metadata
from bot.addons.whatsapp.outbound.messages import Text
from bot.addons.whatsapp.outbound.sender import Sender
from bot.addons.whatsapp.providers.cloud.bodies import cloud_body
from bot.addons.whatsapp.providers.cloud.client import CloudProvider
from bot.addons.whatsapp.providers.cloud.versions import version_warning
from bot.addons.whatsapp.providers.serpro.client import SerproProvider
from tests.channel_harness import FakeAgent, serve_channel
from tests.fakes.graph import FakeGraph, running_graph
from tests.whatsapp_fixtures import fixture

JOANA = "BR.8730419265518204"
JOANA_PHONE = "5561991234567"
MARIA_PHONE, MARIA = "5561987654321", "BR.1502576394655843"


def parsed(name: str) -> list[Any]:
    result = parse_changes(cloud_changes(fixture(name)))
    assert result.problems == []
    return result.events


def value_of(payload: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = payload["entry"][0]["changes"][0]["value"]
    return value


def with_phone(name: str, phone: str, wamid: str) -> dict[str, Any]:
    """A BSUID-only payload after the citizen shared her phone (Meta then adds both)."""
    payload = copy.deepcopy(fixture(name))
    value = value_of(payload)
    value["contacts"][0]["wa_id"] = phone
    value["messages"][0].update({"from": phone, "id": wamid})
    return payload


def renamed(name: str, wamid: str, body: str | None = None) -> dict[str, Any]:
    payload = copy.deepcopy(fixture(name))
    message = value_of(payload)["messages"][0]
    message["id"] = wamid
    if body is not None:
        message["text"] = {"body": body}
    return payload


# --- parsing ------------------------------------------------------------------------


def test_a_message_without_from_is_read_with_its_bsuid_and_username() -> None:
    [message] = parsed("inbound_text_bsuid_only")
    assert isinstance(message, InboundMessage)
    assert (message.wa_id, message.phone, message.user_id) == (JOANA, "", JOANA)
    assert (message.username, message.profile_name) == ("@joana.lima", "Joana")
    [button] = parsed("inbound_interactive_button_reply_bsuid_only")
    assert isinstance(button, InboundMessage) and button.user_id and not button.phone


def test_a_message_with_phone_and_bsuid_keeps_both() -> None:
    [message] = parsed("inbound_text_bsuid_and_phone")
    assert isinstance(message, InboundMessage)
    assert (message.wa_id, message.phone, message.user_id) == (MARIA_PHONE, MARIA_PHONE, MARIA)
    assert message.profile_name == "Maria Souza" and message.group_id == ""


def test_serpro_bare_values_carry_the_same_fields() -> None:
    result = parse_values(iter([value_of(fixture("inbound_text_bsuid_only"))]))
    [message] = result.events
    assert isinstance(message, InboundMessage) and message.user_id == JOANA


def test_the_metadata_tells_actions_whether_the_phone_is_known() -> None:
    [joana] = parsed("inbound_text_bsuid_only")
    [maria] = parsed("inbound_text_bsuid_and_phone")
    assert isinstance(joana, InboundMessage) and isinstance(maria, InboundMessage)
    meta = whatsapp_metadata(joana)
    assert {k: meta[k] for k in ("phone", "phone_known", "user_id", "username")} == {
        "phone": None,
        "phone_known": False,
        "user_id": JOANA,
        "username": "@joana.lima",
    }
    assert whatsapp_metadata(maria)["phone_known"] is True


def test_the_journal_and_relay_codec_keeps_the_identifiers() -> None:
    [message] = parsed("inbound_text_bsuid_only")
    assert isinstance(message, InboundMessage)
    again = message_from_record(message_record(message))
    assert again == message
    assert (again.user_id, again.username, again.phone) == (JOANA, "@joana.lima", "")
    # A record written before 2026 has no "phone": its wa_id was the phone.
    old = '{"wamid":"wamid.X","wa_id":"5561987654321","type":"text","data":{}}'
    assert message_from_record(old).phone == MARIA_PHONE


def test_statuses_read_the_bsuid_recipient_and_pricing() -> None:
    [delivered] = parsed("status_delivered_bsuid_pricing")
    assert isinstance(delivered, StatusUpdate)
    assert delivered.recipient_user_id == MARIA
    assert delivered.pricing == Pricing("service", "regular", True)
    [failed] = parsed("status_failed_bsuid_no_contacts")
    assert isinstance(failed, StatusUpdate)
    assert (failed.recipient_id, failed.recipient_user_id) == ("", JOANA)
    assert [e.code for e in failed.errors] == [131047]


def test_each_field_becomes_its_own_event() -> None:
    assert parsed("webhook_standby_text") == [Standby((Citizen(MARIA_PHONE, MARIA),), 1)]
    assert parsed("webhook_messaging_handovers_control_taken") == [
        Handover("control_taken", Citizen(MARIA_PHONE), "1000000000009002")
    ]
    assert parsed("webhook_messaging_handovers_control_passed") == [
        Handover("control_passed", Citizen(MARIA_PHONE), "1000000000009001")
    ]
    assert parsed("webhook_user_preferences_marketing_stop") == [
        PreferenceUpdate(Citizen(MARIA_PHONE, MARIA), "marketing_messages", "stop")
    ]
    assert parsed("webhook_user_id_update") == [
        IdentityUpdate(
            "BR.3391048572216604",
            Citizen("5561983334444", "BR.7720586143395017", "BR.ENT.8814026653917730"),
        )
    ]
    [paused] = parsed("webhook_message_template_status_paused")
    assert isinstance(paused, OperatorAlert)
    assert (paused.event, paused.template) == ("PAUSED", "lembrete_agendamento")
    assert "SECOND_PAUSE" in paused.detail
    [account] = parsed("webhook_account_update_restriction")
    assert isinstance(account, OperatorAlert) and account.event == "ACCOUNT_RESTRICTION"
    assert "RESTRICTED_BIZ_INITIATED_MESSAGING" in account.detail
    assert parsed("webhook_calls_connect") == [FieldEvent("calls")]
    [group] = parsed("inbound_group_text")
    assert isinstance(group, InboundMessage) and group.group_id


# --- the channel --------------------------------------------------------------------


async def test_a_username_citizen_is_answered_through_her_bsuid_once() -> None:
    async with serve_channel() as s:
        payload = fixture("inbound_text_bsuid_only")
        first, again = await s.post(payload), await s.post(payload)
        await s.settle()
        assert (first.status, again.status) == (200, 200)
        [message] = s.agent.messages
        assert message.sender_id == JOANA
        assert message.metadata["whatsapp"]["user_id"] == JOANA
        assert s.provider.sent == [(JOANA, Text("eco: Quero a segunda via do IPTU"))]
        assert s.channel.metrics.duplicates_dropped == 1


async def test_the_same_citizen_with_her_phone_continues_the_same_conversation() -> None:
    async with serve_channel() as s:
        await s.post(fixture("inbound_text_bsuid_only"))
        await s.settle()
        await s.post(with_phone("inbound_text_bsuid_only", JOANA_PHONE, "wamid.LATER"))
        await s.settle()
        assert [m.sender_id for m in s.agent.messages] == [JOANA, JOANA]
        assert [to for to, _ in s.provider.sent] == [JOANA, JOANA_PHONE]
        assert s.agent.messages[1].metadata["whatsapp"]["phone_known"] is True


async def test_standby_copies_and_group_messages_are_never_answered() -> None:
    async with serve_channel() as s:
        standby, group = (
            await s.post(fixture("webhook_standby_text")),
            await s.post(fixture("inbound_group_text")),
        )
        await s.settle()
        assert (standby.status, group.status) == (200, 200)
        assert s.agent.messages == [] and s.provider.sent == []
        metrics = s.channel.metrics.render()
        assert 'whatsapp_webhook_fields_total{field="standby"} 1' in metrics
        assert 'whatsapp_messages_not_answered_total{reason="group"} 1' in metrics


async def test_the_bot_stays_silent_while_another_app_owns_the_thread() -> None:
    async with serve_channel() as s:
        await s.post(fixture("webhook_messaging_handovers_control_taken"))
        await s.post(renamed("inbound_text_bsuid_and_phone", "wamid.TAKEN"))
        await s.settle()
        assert s.agent.messages == []
        await s.post(fixture("webhook_messaging_handovers_control_passed"))
        await s.post(renamed("inbound_text_bsuid_and_phone", "wamid.PASSED", "voltei"))
        await s.settle()
        assert [m.text for m in s.agent.messages] == ["voltei"]
        assert s.channel.metrics.not_answered["other_app_owns_thread"] == 1


async def test_an_idle_thread_comes_back_to_the_bot() -> None:
    async with serve_channel(handover_idle_seconds=1.0) as s:
        await s.post(fixture("webhook_messaging_handovers_control_taken"))
        await s.post(fixture("webhook_standby_text"))  # traffic: idle time starts again
        await asyncio.sleep(0.6)
        await s.post(renamed("inbound_text_bsuid_and_phone", "wamid.BUSY"))
        await s.settle()
        assert s.agent.messages == []
        await asyncio.sleep(1.1)
        await s.post(renamed("inbound_text_bsuid_and_phone", "wamid.IDLE", "ainda aí?"))
        await s.settle()
        assert [m.text for m in s.agent.messages] == ["ainda aí?"]


async def test_a_marketing_stop_is_stored_per_citizen_and_counted() -> None:
    async with serve_channel() as s:
        await s.post(fixture("inbound_text_bsuid_and_phone"))
        await s.post(fixture("webhook_user_preferences_marketing_stop"))
        await s.settle()
        key = s.agent.messages[0].sender_id
        assert await s.channel.state.routing.preference(key, "marketing_messages") == "stop"
        assert (
            'whatsapp_user_preferences_total{category="marketing_messages",value="stop"} 1'
            in s.channel.metrics.render()
        )


async def test_operator_alerts_are_warnings_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with serve_channel() as s:
        for name in (
            "webhook_message_template_status_paused",
            "webhook_account_update_restriction",
        ):
            assert (await s.post(fixture(name))).status == 200
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("PAUSED" in w and "lembrete_agendamento" in w for w in warnings)
        assert any("ACCOUNT_RESTRICTION" in w for w in warnings)
        assert not await s.channel.state.routing.template_usable("lembrete_agendamento")
        metrics = s.channel.metrics.render()
        assert (
            'whatsapp_operator_alerts_total{field="message_template_status_update",'
            'event="PAUSED"} 1' in metrics
        )
        assert s.agent.messages == []


async def test_other_fields_are_counted_by_name_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with serve_channel() as s:
        for _ in range(3):
            assert (await s.post(fixture("webhook_calls_connect"))).status == 200
        assert s.channel.metrics.webhook_fields["calls"] == 3
        assert sum("'calls'" in r.getMessage() for r in caplog.records) == 1
        assert s.agent.messages == []


async def test_delivered_statuses_count_billed_messages_by_category_and_type() -> None:
    async with serve_channel() as s:
        await s.post(fixture("status_delivered_bsuid_pricing"))
        await s.post(fixture("status_sent_utility_template_pmp"))  # priced again later
        metrics = s.channel.metrics.render()
        assert (
            'whatsapp_priced_messages_total{category="service",type="regular",billable="true"} 1'
            in metrics
        )
        assert 'category="utility"' not in metrics


async def test_a_failed_status_without_contacts_still_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serve_channel() as s:
        assert (await s.post(fixture("status_failed_bsuid_no_contacts"))).status == 200
        assert s.channel.metrics.failures["131047"] == 1
        assert s.channel.metrics.statuses["failed"] == 1
        assert "BR.**************04" in caplog.text and JOANA not in caplog.text


async def test_bsuids_and_usernames_never_reach_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve_channel(agent=FakeAgent()) as s:
        await s.post(fixture("inbound_text_bsuid_only"))
        await s.settle()
        logging.getLogger("rasa.test").info("sender %s (%s)", JOANA, "@joana.lima")
    for record in caplog.records:
        line = record.getMessage()
        assert JOANA not in line and "@joana.lima" not in line


# --- sending ------------------------------------------------------------------------


async def _sender(graph: FakeGraph, **kwargs: Any) -> Sender:
    provider = CloudProvider(graph.url, "v26.0", "100000000000002", graph.token, timeout=5)
    sender = Sender(provider, rate_per_second=1000, sleep=_no_sleep, **kwargs)
    await sender.start()
    return sender


async def _no_sleep(seconds: float) -> None:
    pass


def test_a_reply_to_a_bsuid_uses_recipient_whole() -> None:
    expected = fixture("outbound_text_to_bsuid")
    body = cloud_body(JOANA, Text(expected["text"]["body"]))
    assert body == expected
    assert cloud_body(MARIA_PHONE, Text("oi"))["to"] == "+" + MARIA_PHONE
    assert "to" not in body


async def test_the_fake_graph_refuses_what_meta_refuses() -> None:
    async with running_graph() as graph, aiohttp.ClientSession() as http:
        url = f"{graph.url}/v26.0/100000000000002/messages"
        auth = {"Authorization": f"Bearer {graph.token}"}
        base = {"messaging_product": "whatsapp", "type": "text", "text": {"body": "oi"}}
        for body in (base, {**base, "to": JOANA}):
            async with http.post(url, json=body, headers=auth) as response:
                assert response.status == 400
                assert (await response.json())["error"]["code"] == 100
        async with http.post(url, json={**base, "recipient": JOANA}, headers=auth) as response:
            assert (await response.json())["contacts"] == [{"input": JOANA, "user_id": JOANA}]


async def test_131062_is_sent_again_to_the_phone_when_one_is_known() -> None:
    async with running_graph() as graph:
        state = create_state("")
        key = await state.identities.resolve(Citizen(user_id=JOANA))
        sender = await _sender(graph, state=state)
        graph.fail(400, fixture("error_bsuid_recipient_not_supported_131062"))
        assert await sender.send_all(key, [Text("código")]) == [None]
        assert sender.bsuid_undeliverable == 1 and sender.metrics.failures["131062"] == 1
        await state.identities.resolve(Citizen(JOANA_PHONE, JOANA))
        graph.fail(400, fixture("error_bsuid_recipient_not_supported_131062"))
        # The phone is preferred now; a message that still went to the BSUID falls back.
        contact = await state.identities.contact(key)
        assert await sender._send_to(contact, JOANA, Text("código")) is not None
        await sender.close()
    assert [b.get("to") or b.get("recipient") for b in graph.sent] == ["+" + JOANA_PHONE]


async def test_a_paused_template_is_not_the_reengagement_fallback_until_approved() -> None:
    async with running_graph() as graph:
        state = create_state("")
        sender = await _sender(graph, state=state, reengagement_template="lembrete_agendamento")
        await state.routing.set_template_status("lembrete_agendamento", "PAUSED")
        graph.fail(400, fixture("error_reengagement_131047"))
        await sender.send_all(MARIA_PHONE, [Text("um")])
        assert graph.sent == []
        await state.routing.set_template_status("lembrete_agendamento", "APPROVED")
        graph.fail(400, fixture("error_reengagement_131047"))
        await sender.send_all(MARIA_PHONE, [Text("um")])
        await sender.close()
    assert [b["type"] for b in graph.sent] == ["template"]


@pytest.mark.parametrize(
    ("name", "code", "configuration"),
    [
        ("error_marketing_disabled_131063", 131063, True),
        ("error_bsuid_recipient_not_supported_131062", 131062, False),
    ],
)
def test_2026_graph_errors_are_not_retried(name: str, code: int, configuration: bool) -> None:
    error = WhatsAppApiError.from_response(400, fixture(name))
    assert error.code == code and not error.retryable
    assert error.decision is not None and error.decision.configuration is configuration


@pytest.mark.parametrize(
    ("name", "code"),
    [("error_per_user_marketing_limit_131049", 131049), ("error_marketing_opt_out_131050", 131050)],
)
async def test_marketing_failures_arrive_as_statuses_and_are_counted(name: str, code: int) -> None:
    [status] = parsed(name)
    assert isinstance(status, StatusUpdate) and [e.code for e in status.errors] == [code]
    assert DECISIONS[code].retry is False
    assert DECISIONS[131049].retry_after == 86400
    async with serve_channel() as s:
        await s.post(fixture(name))
        assert s.channel.metrics.failures[str(code)] == 1


def test_131064_and_137000_stop_sending() -> None:
    for code in (131064, 137000):
        assert not WhatsAppApiError(code, "x", http_status=400).retryable
        assert DECISIONS[code].retry is False


def test_an_api_version_older_than_18_months_is_warned_about() -> None:
    today = datetime.date(2026, 11, 30)
    assert WhatsAppSettings().api_version == "v26.0"
    assert version_warning("v26.0", today) is None
    assert version_warning("v27.0", today) is None
    warning = version_warning("v21.0", today)
    assert warning is not None and "2024-10-02" in warning
    assert version_warning("v24.0", today) is None  # 14 months
    assert version_warning("v24.0", datetime.date(2027, 5, 1)) is not None


async def test_serpro_keeps_destinatario_a_phone_and_says_why_it_cannot_send(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = SerproProvider("http://127.0.0.1:9", "id", "secret", "waba", timeout=1)
    with pytest.raises(WhatsAppApiError) as raised:
        await provider.send(JOANA, Text("oi"))
    assert raised.value.code == 131062
    assert "only the business-scoped user id" in caplog.text and JOANA not in caplog.text
