"""Every recorded inbound payload parses to the expected event and Rasa user message."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bot.addons.whatsapp.config import InboundIntents
from bot.addons.whatsapp.inbound.events import (
    InboundMessage,
    MessageType,
    StatusState,
    StatusUpdate,
    WebhookError,
)
from bot.addons.whatsapp.inbound.parse import (
    PayloadError,
    cloud_values,
    parse_values,
    serpro_values,
)
from bot.addons.whatsapp.inbound.to_rasa import user_text, whatsapp_metadata
from tests.whatsapp_fixtures import fixture, fixture_names

INTENTS = InboundIntents()

# fixture ▸ (type, text Rasa receives)
EXPECTED_MESSAGES: dict[str, tuple[MessageType, str]] = {
    "inbound_audio": (
        MessageType.AUDIO,
        '/send_media{"media_type":"audio","mime_type":"audio/ogg; codecs=opus"}',
    ),
    "inbound_audio_voice": (
        MessageType.AUDIO,
        '/send_media{"media_type":"audio","mime_type":"audio/ogg; codecs=opus"}',
    ),
    "inbound_button_template_quick_reply": (MessageType.BUTTON, "callback_data"),
    "inbound_contacts": (MessageType.CONTACTS, '/unsupported_message{"message_type":"contacts"}'),
    "inbound_document": (
        MessageType.DOCUMENT,
        '/send_media{"media_type":"document","mime_type":"application/pdf","caption":"caption"}',
    ),
    "inbound_image": (
        MessageType.IMAGE,
        '/send_media{"media_type":"image","mime_type":"image/jpeg","caption":"Taj Mahal"}',
    ),
    "inbound_image_no_url": (
        MessageType.IMAGE,
        '/send_media{"media_type":"image","mime_type":"image/jpeg"}',
    ),
    "inbound_interactive_button_reply": (MessageType.INTERACTIVE, "cancel-button"),
    "inbound_interactive_list_reply": (MessageType.INTERACTIVE, "priority_express"),
    "inbound_interactive_nfm_reply": (
        MessageType.INTERACTIVE,
        '/unsupported_message{"message_type":"flow_reply"}',
    ),
    "inbound_location": (
        MessageType.LOCATION,
        '/share_location{"latitude":37.4611978,"longitude":-122.2164385,'
        '"location_name":"Facebook HQ","address":"1 Hacker Way, Menlo Park, CA 94025"}',
    ),
    "inbound_location_current": (
        MessageType.LOCATION,
        '/share_location{"latitude":12.25089,"longitude":43.90539}',
    ),
    "inbound_order": (MessageType.ORDER, '/unsupported_message{"message_type":"order"}'),
    "inbound_reaction": (
        MessageType.REACTION,
        '/react{"emoji":"😮","reaction":"other","reacted_message_id":"wamid.FAKE0002"}',
    ),
    "inbound_reaction_removed": (
        MessageType.REACTION,
        '/react{"reaction":"removed","reacted_message_id":"wamid.FAKE0002"}',
    ),
    "inbound_reaction_thumbs_up": (
        MessageType.REACTION,
        '/react{"emoji":"👍🏽","reaction":"positive","reacted_message_id":"wamid.FAKE0002"}',
    ),
    "inbound_revoke": (
        MessageType.REVOKE,
        '/message_deleted{"deleted_message_id":"wamid.FAKE0002"}',
    ),
    "inbound_edit_text": (
        MessageType.EDIT,
        '/message_edited{"edited_message_id":"wamid.FAKE0002","edited_text":"Text was edited"}',
    ),
    "inbound_edit_caption": (
        MessageType.EDIT,
        '/message_edited{"edited_message_id":"wamid.FAKE0002","edited_text":"caption"}',
    ),
    "inbound_interactive_call_permission_accept": (
        MessageType.INTERACTIVE,
        '/call_permission_reply{"call_permission":"accept"}',
    ),
    "inbound_interactive_call_permission_reject": (
        MessageType.INTERACTIVE,
        '/call_permission_reply{"call_permission":"reject"}',
    ),
    # System notices never reach Rasa (the triage drops them); what user_text would give:
    "inbound_system_user_changed_user_id": (
        MessageType.SYSTEM,
        '/unsupported_message{"message_type":"system"}',
    ),
    "inbound_system_identity_changed": (
        MessageType.SYSTEM,
        '/unsupported_message{"message_type":"system"}',
    ),
    "inbound_sticker": (
        MessageType.STICKER,
        '/send_media{"media_type":"sticker","mime_type":"image/webp"}',
    ),
    "inbound_sticker_static": (
        MessageType.STICKER,
        '/send_media{"media_type":"sticker","mime_type":"image/webp"}',
    ),
    "inbound_system_user_changed_number": (
        MessageType.SYSTEM,
        '/unsupported_message{"message_type":"system"}',
    ),
    "inbound_text": (MessageType.TEXT, "Does it come in another color?"),
    "inbound_text_frequently_forwarded": (MessageType.TEXT, "text forwarded many times"),
    "inbound_text_referral_ctwa": (MessageType.TEXT, None),  # type: ignore[dict-item]
    "inbound_text_referred_product": (MessageType.TEXT, None),  # type: ignore[dict-item]
    "inbound_text_reply_context": (MessageType.TEXT, "replied text"),
    "inbound_video": (
        MessageType.VIDEO,
        '/send_media{"media_type":"video","mime_type":"video/mp4","caption":"Buraco na rua"}',
    ),
    "inbound_unknown_legacy": (
        MessageType.UNKNOWN,
        '/unsupported_message{"message_type":"unknown"}',
    ),
    "inbound_unsupported": (
        MessageType.UNSUPPORTED,
        '/unsupported_message{"message_type":"unsupported"}',
    ),
    # 2026: BSUIDs, usernames, groups, contact requests.
    "inbound_text_bsuid_only": (MessageType.TEXT, "Quero a segunda via do IPTU"),
    "inbound_text_bsuid_and_phone": (MessageType.TEXT, "Oi"),
    "inbound_interactive_button_reply_bsuid_only": (MessageType.INTERACTIVE, "feedback_sim"),
    "inbound_group_text": (MessageType.TEXT, None),  # type: ignore[dict-item]
    "inbound_contacts_contact_request": (
        MessageType.CONTACTS,
        '/unsupported_message{"message_type":"contacts"}',
    ),
    "inbound_system_user_changed_number_bsuid": (
        MessageType.SYSTEM,
        '/unsupported_message{"message_type":"system"}',
    ),
}


def only_message(name: str) -> InboundMessage:
    result = parse_values(cloud_values(fixture(name)))
    assert result.problems == []
    messages = [e for e in result.events if isinstance(e, InboundMessage)]
    assert len(messages) == 1
    return messages[0]


def test_every_inbound_fixture_has_an_expectation() -> None:
    names = [n for n in fixture_names("inbound_") if n != "inbound_errors_value_level"]
    assert sorted(EXPECTED_MESSAGES) == names


@pytest.mark.parametrize("name", sorted(EXPECTED_MESSAGES))
def test_inbound_fixture_becomes_the_expected_user_message(name: str) -> None:
    raw = fixture(name)["entry"][0]["changes"][0]["value"]
    message = only_message(name)
    expected_type, expected_text = EXPECTED_MESSAGES[name]
    assert message.type is expected_type
    assert message.wamid == raw["messages"][0]["id"]
    # Without a phone (a username user) the BSUID stands in for it.
    sent = raw["messages"][0]
    # A user_changed_user_id notice names the citizen only by their previous BSUID.
    sender = sent.get("from") or sent.get("from_user_id") or sent["system"]["previous_user_id"]
    assert message.wa_id == sender
    assert message.phone_number_id == "100000000000002"
    if expected_text is None:  # plain texts with extra context: the body as sent
        expected_text = raw["messages"][0]["text"]["body"]
    assert user_text(message, INTENTS) == expected_text


def test_metadata_carries_profile_context_referral_and_media() -> None:
    image = whatsapp_metadata(only_message("inbound_image"))
    assert image["profile_name"] == "Test User"
    assert image["media"]["id"] == "100000000000101"
    assert image["media"]["mime_type"] == "image/jpeg"
    assert image["type"] == "image"

    document = whatsapp_metadata(only_message("inbound_document"))
    assert document["media"]["filename"] == "filename.pdf"
    assert document["forwarded"] is True

    reply = whatsapp_metadata(only_message("inbound_text_reply_context"))
    assert reply["context"] == {"from": "15550001111", "id": "wamid.FAKE0001"}

    referral = whatsapp_metadata(only_message("inbound_text_referral_ctwa"))
    assert referral["referral"]["source_type"] == "ad"
    assert (
        whatsapp_metadata(only_message("inbound_text_frequently_forwarded"))["frequently_forwarded"]
        is True
    )
    assert whatsapp_metadata(only_message("inbound_audio_voice"))["media"]["voice"] is True


def test_intent_names_are_configurable() -> None:
    intents = InboundIntents(location="where_am_i", media="got_file")
    assert user_text(only_message("inbound_location_current"), intents).startswith("/where_am_i{")
    assert user_text(only_message("inbound_image_no_url"), intents).startswith("/got_file{")


@pytest.mark.parametrize("name", fixture_names("status_"))
def test_status_fixture_becomes_a_status_update(name: str) -> None:
    raw = fixture(name)["entry"][0]["changes"][0]["value"]["statuses"][0]
    result = parse_values(cloud_values(fixture(name)))
    assert result.problems == []
    (status,) = result.events
    assert isinstance(status, StatusUpdate)
    assert status.status is StatusState(raw["status"])
    assert status.wamid == raw["id"]
    assert [e.code for e in status.errors] == [e["code"] for e in raw.get("errors", [])]


def test_value_level_errors_become_error_events() -> None:
    result = parse_values(cloud_values(fixture("inbound_errors_value_level")))
    assert [e.error.code for e in result.events if isinstance(e, WebhookError)] == [130429]


def batch(*names: str) -> dict[str, Any]:
    """One webhook with each fixture's value as a separate change of two entries."""
    changes = [fixture(n)["entry"][0]["changes"][0] for n in names]
    half = len(changes) // 2
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "100000000000001", "changes": changes[:half]},
            {"id": "100000000000001", "changes": changes[half:]},
        ],
    }


def test_a_batch_is_read_whole_never_only_its_first_item() -> None:
    payload = batch("inbound_text", "status_read", "inbound_image", "inbound_errors_value_level")
    payload["entry"][0]["changes"][0]["value"]["messages"].append(
        {
            "from": "15550009999",
            "id": "wamid.EXTRA",
            "timestamp": "1",
            "type": "text",
            "text": {"body": "2nd"},
        }
    )
    kinds = [type(e).__name__ for e in parse_values(cloud_values(payload)).events]
    assert kinds == [
        "InboundMessage",
        "InboundMessage",
        "StatusUpdate",
        "InboundMessage",
        "WebhookError",
    ]


def test_a_broken_item_is_skipped_and_the_rest_of_the_batch_kept() -> None:
    payload = batch("inbound_text", "inbound_location")
    payload["entry"][0]["changes"][0]["value"]["messages"].insert(0, {"type": "text"})
    result = parse_values(cloud_values(payload))
    assert result.problems == ["messages[0] has no 'id' or no 'from'/'from_user_id'"]
    assert [e.wamid for e in result.events if isinstance(e, InboundMessage)] == [
        "wamid.FAKE0001"
    ] * 2


def test_an_unknown_type_is_unknown_not_an_exception(caplog: pytest.LogCaptureFixture) -> None:
    payload = fixture("inbound_text")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["type"] = "hologram"
    (message,) = parse_values(cloud_values(payload)).events
    assert isinstance(message, InboundMessage) and message.type is MessageType.UNKNOWN
    assert "hologram" in caplog.text
    assert user_text(message, INTENTS) == '/unsupported_message{"message_type":"hologram"}'


@pytest.mark.parametrize(
    "payload",
    [[], "x", {"object": "page", "entry": []}, {"object": "whatsapp_business_account"}],
)
def test_bodies_that_are_not_whatsapp_webhooks_are_refused(payload: Any) -> None:
    with pytest.raises(PayloadError):
        list(cloud_values(payload))


def serpro_value(name: str) -> dict[str, Any]:
    """A Cloud fixture's value as Serpro sends it: no envelope, extras, empty contacts."""
    value = dict(fixture(name)["entry"][0]["changes"][0]["value"])
    value.update({"contacts": [], "delay": 0, "idRequisicao": "I123"})
    value.setdefault("errors", [])
    value.setdefault("statuses", [])
    value["metadata"] = {**value["metadata"], "webhook_object_id": "6873f1e291c9565c68150fcf"}
    return value


@pytest.mark.parametrize(
    "wrap",
    [
        lambda v: v,
        lambda v: [v],
        lambda v: [{"body": v}],
        lambda v: {"data": [v]},
    ],
    ids=["object", "list", "list-of-body", "data"],
)
def test_serpro_wrappings_give_the_same_events(wrap: Any) -> None:
    value = serpro_value("inbound_text")
    (message,) = parse_values(serpro_values(json.loads(json.dumps(wrap(value))))).events
    assert isinstance(message, InboundMessage)
    assert (message.wamid, message.wa_id, message.type) == (
        "wamid.FAKE0001",
        "15550002222",
        MessageType.TEXT,
    )
    assert message.profile_name is None  # contacts were empty: the sender comes from 'from'
    assert user_text(message, INTENTS) == "Does it come in another color?"


def test_serpro_status_events_are_statuses() -> None:
    value = serpro_value("status_delivered")
    (status,) = parse_values(serpro_values(value)).events
    assert isinstance(status, StatusUpdate) and status.status is StatusState.DELIVERED


def test_a_serpro_body_without_events_is_refused() -> None:
    with pytest.raises(PayloadError):
        list(serpro_values({"hello": "world"}))


def test_every_fixture_sources_md_names_exists_and_every_inbound_fixture_is_named() -> None:
    folder = Path(__file__).parent / "data" / "whatsapp"
    sources = (folder / "SOURCES.md").read_text(encoding="utf-8")
    named = set(
        re.findall(r"\b((?:inbound|status|outbound|response|error|webhook)_\w+\.json)", sources)
    )
    assert sorted(n for n in named if not (folder / n).exists()) == []
    received = {p.name for p in folder.glob("inbound_*.json")} | {
        p.name for p in folder.glob("status_*.json")
    }
    assert sorted(received - named) == []
