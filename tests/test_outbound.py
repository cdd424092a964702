"""Rasa responses ▸ WhatsApp request bodies, compared whole."""

from __future__ import annotations

from typing import Any

import pytest

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.outbound.convert import ConversionOptions, convert_response
from bot.addons.whatsapp.outbound.custom import check_custom
from bot.addons.whatsapp.outbound.messages import ListMessage, ReplyButtons, Text
from bot.addons.whatsapp.outbound.short_keys import PayloadStore
from bot.addons.whatsapp.outbound.text import split_text
from bot.addons.whatsapp.providers.cloud.bodies import cloud_body, mark_read_body, message_object
from tests.whatsapp_fixtures import fixture

TO = "15550002222"
DEFAULT = ConversionOptions()
ENVELOPE = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "+15550002222"}


def bodies(response: dict[str, Any], options: ConversionOptions = DEFAULT) -> list[dict[str, Any]]:
    conversion = convert_response(response, options)
    assert conversion.problems == []
    return [cloud_body(TO, m) for m in conversion.messages]


def buttons(count: int, title: str = "Opção {}") -> list[dict[str, str]]:
    return [{"title": title.format(i), "payload": f'/pick{{"n":{i}}}'} for i in range(1, count + 1)]


def test_text_matches_metas_text_body() -> None:
    expected = fixture("outbound_text")
    assert bodies({"text": expected["text"]["body"]}) == [expected]


def test_preview_url_only_when_the_text_holds_a_url_and_it_is_enabled() -> None:
    assert bodies({"text": "sem link"})[0]["text"] == {"preview_url": False, "body": "sem link"}
    off = ConversionOptions(preview_urls=False)
    assert bodies({"text": "veja https://x.example"}, off)[0]["text"]["preview_url"] is False


@pytest.mark.parametrize("length", [4096, 4097, 10000])
def test_long_text_is_split_in_order_within_the_limit(length: int) -> None:
    words = [f"palavra{i:05d}" for i in range(length)]
    text = " ".join(words)[:length].rstrip()
    chunks = split_text(text)
    assert all(len(c) <= limits.TEXT_BODY_MAX for c in chunks)
    assert len(chunks) == -(-length // limits.TEXT_BODY_MAX)
    assert " ".join(chunks) == text  # nothing lost, nothing reordered, no word cut


def test_split_prefers_paragraphs_then_sentences() -> None:
    first = "A" * 3000
    second = "Primeira frase. " + "b" * 2000 + ". Terceira."
    chunks = split_text(f"{first}\n\n{second}")
    assert chunks == [first, second]
    sentences = ("Frase número um. " * 300).strip()
    parts = split_text(sentences)
    assert all(p.endswith(".") for p in parts) and len(parts) == 2


def test_a_word_longer_than_the_limit_is_the_only_thing_cut() -> None:
    word = "x" * 5000
    assert split_text(f"início {word} fim") == ["início", "x" * 4096, "x" * 904 + " fim"]


def test_three_buttons_become_reply_buttons() -> None:
    assert bodies({"text": "Escolha", "buttons": buttons(3)}) == [
        {
            **ENVELOPE,
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Escolha"},
                "action": {
                    "buttons": [
                        {
                            "type": "reply",
                            "reply": {"id": f'/pick{{"n":{i}}}', "title": f"Opção {i}"},
                        }
                        for i in (1, 2, 3)
                    ]
                },
            },
        }
    ]


@pytest.mark.parametrize("count", [4, 10])
def test_four_to_ten_buttons_become_one_list(count: int) -> None:
    assert bodies({"text": "Escolha", "buttons": buttons(count)}) == [
        {
            **ENVELOPE,
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Escolha"},
                "action": {
                    "button": "Ver opções",
                    "sections": [
                        {
                            "rows": [
                                {"id": f'/pick{{"n":{i}}}', "title": f"Opção {i}"}
                                for i in range(1, count + 1)
                            ]
                        }
                    ],
                },
            },
        }
    ]


@pytest.mark.parametrize(("count", "pages"), [(11, 2), (25, 3)])
def test_more_than_ten_buttons_become_numbered_lists_and_none_is_dropped(
    count: int, pages: int
) -> None:
    result = bodies({"text": "Escolha", "buttons": buttons(count)})
    assert len(result) == pages
    assert [b["interactive"]["body"]["text"] for b in result] == [
        f"Escolha ({n}/{pages})" for n in range(1, pages + 1)
    ]
    rows = [row for b in result for row in b["interactive"]["action"]["sections"][0]["rows"]]
    assert [r["title"] for r in rows] == [f"Opção {i}" for i in range(1, count + 1)]
    assert all(len(b["interactive"]["action"]["sections"][0]["rows"]) <= 10 for b in result)


def test_list_label_is_configurable() -> None:
    result = bodies(
        {"text": "x", "buttons": buttons(5)}, ConversionOptions(list_button_label="Serviços")
    )
    assert result[0]["interactive"]["action"]["button"] == "Serviços"


def test_long_titles_are_cut_and_lists_keep_the_full_title_in_the_description() -> None:
    title = "Alvará de funcionamento para empresas"
    reply = bodies({"text": "x", "buttons": [{"title": title, "payload": "/a"}]})
    assert (
        reply[0]["interactive"]["action"]["buttons"][0]["reply"]["title"] == "Alvará de funcionam…"
    )
    listed = bodies(
        {"text": "x", "buttons": [{"title": title, "payload": f"/a{i}"} for i in range(4)]}
    )
    row = listed[0]["interactive"]["action"]["sections"][0]["rows"][0]
    assert row == {"id": "/a0", "title": "Alvará de funcionamento…", "description": title}


def test_titles_that_become_identical_are_made_distinct() -> None:
    same = [{"title": "Consulta médica agendada hoje " + s, "payload": f"/c{s}"} for s in "ABC"]
    titles = [
        b["reply"]["title"]
        for b in bodies({"text": "x", "buttons": same})[0]["interactive"]["action"]["buttons"]
    ]
    assert titles == ["Consulta médica age…", "Consulta médica a… 2", "Consulta médica a… 3"]
    assert all(len(t) <= limits.REPLY_BUTTON_TITLE_MAX for t in titles)


async def test_a_long_payload_gets_a_short_id_that_maps_back_through_a_list_reply() -> None:
    long_payload = '/choose_service{"service":"' + "x" * 300 + '"}'
    options = [
        {"title": f"Serviço {i}", "payload": long_payload if i == 2 else f"/s{i}"} for i in range(5)
    ]
    conversion = convert_response({"text": "Escolha", "buttons": options})
    (message,) = conversion.messages
    assert isinstance(message, ListMessage)
    ids = [row.id for row in message.sections[0].rows]
    assert all(len(i) <= limits.LIST_ROW_ID_MAX for i in ids)
    assert ids[2] != long_payload and ids[2] in conversion.payload_keys

    store = PayloadStore()
    await store.remember(conversion.payload_keys)
    reply = fixture("inbound_interactive_list_reply")
    reply["entry"][0]["changes"][0]["value"]["messages"][0]["interactive"]["list_reply"]["id"] = (
        ids[2]
    )
    tapped = reply["entry"][0]["changes"][0]["value"]["messages"][0]["interactive"]["list_reply"][
        "id"
    ]
    assert await store.resolve(tapped) == long_payload
    assert await store.resolve("/s1") == "/s1"


def test_duplicate_payloads_get_distinct_ids() -> None:
    conversion = convert_response(
        {"text": "x", "buttons": [{"title": "A", "payload": "/p"}, {"title": "B", "payload": "/p"}]}
    )
    (message,) = conversion.messages
    assert isinstance(message, ReplyButtons)
    first, second = (b.id for b in message.buttons)
    assert first == "/p" and second != "/p" and conversion.payload_keys[second] == "/p"


def test_text_over_the_interactive_body_limit_goes_first_as_text() -> None:
    text = "Informação. " * 120
    result = bodies({"text": text, "buttons": buttons(2)})
    assert [b["type"] for b in result] == ["text", "interactive"]
    assert result[0]["text"]["body"] == text.strip()
    assert result[1]["interactive"]["body"]["text"] == "Escolha uma opção:"


def test_url_buttons_become_cta_url_messages() -> None:
    result = bodies(
        {
            "text": "Acesse o portal",
            "buttons": [{"title": "Abrir portal", "url": "https://portal.example"}],
        }
    )
    assert result == [
        {
            **ENVELOPE,
            "type": "interactive",
            "interactive": {
                "type": "cta_url",
                "body": {"text": "Acesse o portal"},
                "action": {
                    "name": "cta_url",
                    "parameters": {"display_text": "Abrir portal", "url": "https://portal.example"},
                },
            },
        }
    ]


def test_image_with_short_text_is_one_captioned_image() -> None:
    expected = fixture("outbound_image_link")
    assert bodies({"text": "The best succulent ever?", "image": expected["image"]["link"]}) == [
        expected
    ]


def test_image_with_buttons_sends_the_buttons_then_the_image() -> None:
    result = bodies({"text": "Veja", "buttons": buttons(2), "image": "https://x.example/a.png"})
    assert [b["type"] for b in result] == ["interactive", "image"]
    assert result[1]["image"] == {"link": "https://x.example/a.png"}


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://x.example/doc/edital.pdf", "document"),
        ("https://x.example/a/aviso.ogg", "audio"),
        ("https://x.example/v/tutorial.mp4", "video"),
        ("https://x.example/planilha.xlsx", "document"),
    ],
)
def test_attachment_type_follows_the_extension(url: str, kind: str) -> None:
    (body,) = bodies({"attachment": url})
    assert body["type"] == kind
    assert body[kind]["link"] == url


def test_attachment_as_a_mapping_matches_metas_document_body() -> None:
    expected = fixture("outbound_document_link")
    document = expected["document"]
    result = bodies(
        {
            "attachment": {
                "type": "document",
                "url": document["link"],
                "filename": document["filename"],
                "caption": document["caption"],
            }
        }
    )
    assert result == [expected]


def test_elements_become_a_sequence_with_nothing_dropped() -> None:
    elements = [
        {"title": "IPTU", "subtitle": "Pague até 10/03", "image_url": "https://x.example/iptu.png"},
        {"title": "Coleta", "subtitle": "3x por semana", "buttons": buttons(2)},
    ]
    result = bodies({"elements": elements})
    assert [b["type"] for b in result] == ["image", "interactive"]
    assert result[0]["image"]["caption"] == "*IPTU*\nPague até 10/03"
    assert result[1]["interactive"]["body"]["text"] == "*Coleta*\n3x por semana"


@pytest.mark.parametrize(
    "name",
    [
        "outbound_template",
        "outbound_location",
        "outbound_contacts",
        "outbound_reaction",
        "outbound_sticker_link",
        "outbound_interactive_cta_url",
        "outbound_interactive_flow",
        "outbound_interactive_location_request",
    ],
)
def test_custom_whatsapp_bodies_pass_through_unchanged(name: str) -> None:
    expected = fixture(name)
    custom = {
        k: v for k, v in expected.items() if k not in ("messaging_product", "recipient_type", "to")
    }
    assert bodies({"custom": {"whatsapp": custom}}) == [{**ENVELOPE, **custom}]


@pytest.mark.parametrize(
    ("custom", "problem"),
    [
        (
            {"type": "template", "template": {"language": {"code": "pt_BR"}}},
            "template needs a 'name'",
        ),
        ({"type": "location", "location": {"latitude": 1}}, "location needs 'longitude'"),
        ({"type": "telepathy", "telepathy": {}}, "custom.whatsapp.type must be one of"),
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "cta_url",
                    "body": {"text": "x"},
                    "action": {
                        "name": "cta_url",
                        "parameters": {
                            "display_text": "Um texto longo demais aqui",
                            "url": "https://x",
                        },
                    },
                },
            },
            "display_text must have 1 to 20",
        ),
        (
            {"type": "audio", "audio": {"link": "https://x/a.ogg", "caption": "no"}},
            "audio cannot have a caption",
        ),
    ],
)
def test_a_malformed_custom_is_reported_and_the_rest_still_goes_out(
    custom: dict[str, Any], problem: str
) -> None:
    assert any(problem in p for p in check_custom(custom))
    conversion = convert_response(
        {"text": "Olá", "custom": {"whatsapp": custom}, "attachment": "https://x.example/a.pdf"}
    )
    assert any(problem in p for p in conversion.problems)
    assert [type(m).__name__ for m in conversion.messages] == ["Text", "Media"]


def test_mark_read_bodies_match_metas() -> None:
    assert mark_read_body("wamid.FAKE0001", typing=False) == fixture("outbound_mark_read")
    assert mark_read_body("wamid.FAKE0001", typing=True) == fixture("outbound_mark_read_typing")


def test_every_converted_message_respects_the_limits() -> None:
    response = {
        "text": "y" * 5000,
        "buttons": [{"title": "t" * 40, "payload": "p" * 300} for _ in range(23)],
    }
    for message in convert_response(response).messages:
        obj = message_object(message)
        if isinstance(message, Text):
            assert len(message.body) <= limits.TEXT_BODY_MAX
        else:
            interactive = obj["interactive"]
            assert len(interactive["body"]["text"]) <= limits.INTERACTIVE_BODY_MAX
            rows = interactive["action"]["sections"][0]["rows"]
            assert len(rows) <= limits.LIST_ROWS_MAX
            assert all(
                len(r["title"]) <= 24
                and len(r["id"]) <= 200
                and len(r.get("description", "")) <= 72
                for r in rows
            )


def test_an_image_with_a_text_too_long_for_a_caption_goes_as_text_then_the_image() -> None:
    text = "Informação importante sobre o serviço. " * 30  # 1,170 characters > 1,024
    assert bodies({"text": text, "image": "https://x.example/mapa.png"}) == [
        {**ENVELOPE, "type": "text", "text": {"preview_url": False, "body": text.strip()}},
        {**ENVELOPE, "type": "image", "image": {"link": "https://x.example/mapa.png"}},
    ]


def test_a_webp_attachment_is_sent_as_metas_sticker_body() -> None:
    expected = fixture("outbound_sticker_link")
    assert bodies({"attachment": expected["sticker"]["link"]}) == [expected]


def test_a_reply_buttons_payload_over_256_characters_gets_a_short_id() -> None:
    long_payload = '/choose{"service":"' + "x" * 300 + '"}'
    conversion = convert_response(
        {"text": "Confirma?", "buttons": [{"title": "Sim", "payload": long_payload}]}
    )
    ((short, original),) = conversion.payload_keys.items()
    assert original == long_payload and len(short) <= limits.REPLY_BUTTON_ID_MAX
    assert [cloud_body(TO, m) for m in conversion.messages] == [
        {
            **ENVELOPE,
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Confirma?"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": short, "title": "Sim"}}]},
            },
        }
    ]


def test_a_list_label_over_20_characters_is_cut() -> None:
    options = ConversionOptions(list_button_label="Escolha um dos serviços")
    assert bodies({"text": "Escolha", "buttons": buttons(4)}, options) == [
        {
            **ENVELOPE,
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Escolha"},
                "action": {
                    "button": "Escolha um dos serv…",
                    "sections": [
                        {
                            "rows": [
                                {"id": f'/pick{{"n":{i}}}', "title": f"Opção {i}"}
                                for i in range(1, 5)
                            ]
                        }
                    ],
                },
            },
        }
    ]
