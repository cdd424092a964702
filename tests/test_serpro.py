"""The Serpro provider against a local fake of its API: token, send bodies, registration."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.addons.whatsapp.errors import WhatsAppApiError
from bot.addons.whatsapp.outbound.convert import convert_response
from bot.addons.whatsapp.outbound.messages import (
    Button,
    CtaUrl,
    Custom,
    ListMessage,
    ListRow,
    ListSection,
    Media,
    OutMessage,
    ReplyButtons,
    Text,
)
from bot.addons.whatsapp.providers.serpro.__main__ import main as cli
from bot.addons.whatsapp.providers.serpro.bodies import serpro_request
from bot.addons.whatsapp.providers.serpro.client import SerproProvider
from bot.addons.whatsapp.providers.serpro.registration import (
    RegistrationError,
    list_webhooks,
    register,
)
from tests.fakes.serpro import CLIENT_ID, CLIENT_SECRET, FakeSerpro, running_serpro
from tests.support.stack import free_port
from tests.whatsapp_fixtures import fixture

WABA = "waba-123"
TO = "5561999998888"
DATA = Path(__file__).parent / "data" / "serpro"
# Written by hand from Serpro's documented bodies (tests/data/serpro/SOURCES.md).
GOLDEN = json.loads((DATA / "send_bodies.json").read_text(encoding="utf-8"))
DOCUMENTED = json.loads((DATA / "documented_bodies.json").read_text(encoding="utf-8"))


def provider_for(fake: FakeSerpro, secret: str = CLIENT_SECRET) -> SerproProvider:
    return SerproProvider(fake.url, CLIENT_ID, secret, WABA, timeout=5)


@pytest.fixture
async def serpro() -> AsyncIterator[tuple[FakeSerpro, SerproProvider]]:
    async with running_serpro() as fake:
        provider = provider_for(fake)
        await provider.start()
        yield fake, provider
        await provider.close()


MESSAGES: dict[str, OutMessage] = {
    "text": Text("Olá! Veja https://portal.example", preview_url=True),
    "buttons": ReplyButtons("Ajudou?", (Button("/affirm", "Sim"), Button("/deny", "Não"))),
    "list": ListMessage(
        "Escolha um serviço",
        "Ver opções",
        (
            ListSection(
                (
                    ListRow('/s{"s":"iptu"}', "IPTU"),
                    ListRow(
                        "/s2", "Alvará de funcionamento…", "Alvará de funcionamento para empresas"
                    ),
                )
            ),
        ),
    ),
    "image_link": Media("image", link="https://x.example/a.png", caption="Mapa"),
    "document_id": Media("document", media_id="1117935403029375", filename="edital.pdf"),
    "template": Custom(fixture("outbound_template") | {}),
    "location_request": Custom(
        {
            "type": "interactive",
            "interactive": fixture("outbound_interactive_location_request")["interactive"],
        }
    ),
    "cta_url": CtaUrl("Emita a segunda via", "Abrir portal", "https://portal.example"),
}


def test_every_message_becomes_the_golden_serpro_request() -> None:
    assert sorted(GOLDEN) == sorted(MESSAGES)
    for name, message in MESSAGES.items():
        request = serpro_request(TO, message, WABA)
        assert request is not None
        assert {"endpoint": request.endpoint, "body": request.body} == GOLDEN[name], name


def shape(value: Any) -> Any:
    """A body's fields and their JSON types, lists by their first item."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_each_golden_body_has_exactly_the_documented_fields(name: str) -> None:
    golden = GOLDEN[name]
    documented = DOCUMENTED[golden["endpoint"]]
    expected = shape(documented["body"])
    # Fields the documented examples show as optional, where this message uses them.
    optional = {k: v for k, v in documented.get("optional", {}).items() if "[" not in k}
    body = shape(golden["body"])
    for key in set(body) - set(expected):
        assert key in optional, f"{name}: {key} is not in Serpro's documented body"
        expected[key] = shape(optional[key])
    if golden["endpoint"] == "mensagem/media" and "idMedia" in body:
        del expected["linkMedia"]  # the documented alternative: an uploaded media's id
    if golden["endpoint"] == "mensagem/template":  # the header carries one of its fields
        expected["header"] = {k: v for k, v in expected["header"].items() if k in body["header"]}
    if golden["endpoint"] == "mensagem/interativa-lista":  # rows[].descricao is optional
        rows = golden["body"]["secoes"][0]["rows"]
        assert all(set(row) <= {"id", "titulo", "descricao"} for row in rows)
        body["secoes"][0]["rows"] = [{"id": "str", "titulo": "str"}]
    assert body == expected, name


def test_messages_serpro_has_no_endpoint_for_are_sent_as_text_and_say_so() -> None:
    request = serpro_request(TO, MESSAGES["cta_url"], WABA)
    assert request is not None
    assert (request.endpoint, request.degraded) == ("mensagem/texto", "cta_url sent as text")
    assert "degraded" not in request.body  # an internal note, logged, never sent


async def test_every_golden_request_is_accepted_by_the_fake(
    serpro: tuple[FakeSerpro, SerproProvider],
) -> None:
    fake, provider = serpro
    for message in MESSAGES.values():
        await provider.send(TO, message)
    assert fake.sent == [(g["endpoint"].split("/")[1], g["body"]) for g in GOLDEN.values()]
    assert fake.refused == []


BUTTON = {"id": "/a", "titulo": "A"}


@pytest.mark.parametrize(
    ("endpoint", "body", "status"),
    [
        ("mensagem/texto", {"destinatario": TO}, 400),  # no body
        ("mensagem/texto", {"destinatario": TO, "body": 5}, 400),  # not a string
        ("mensagem/texto", {"body": "oi"}, 400),  # no recipient
        ("mensagem/interativa-botoes", {"destinatario": TO, "textoBody": "?"}, 400),
        (
            "mensagem/interativa-botoes",
            {"destinatario": TO, "textoBody": "?", "buttons": [BUTTON] * 4},
            400,
        ),
        (
            "mensagem/interativa-lista",  # no list-button label
            {"destinatario": TO, "textoBody": "?", "secoes": [{"rows": [BUTTON]}]},
            400,
        ),
        ("mensagem/media", {"destinatario": TO, "tipoMedia": "image"}, 400),  # no media
        ("mensagem/media", {"destinatario": TO, "tipoMedia": "gif", "linkMedia": "x"}, 400),
        (
            "mensagem/template",
            {"nomeTemplate": "t", "wabaId": WABA, "destinatarios": [], "body": {}},
            400,
        ),
        ("mensagem/carrossel", {"destinatario": TO}, 404),  # no such endpoint
    ],
)
async def test_the_fake_refuses_what_serpros_documented_api_would(
    serpro: tuple[FakeSerpro, SerproProvider], endpoint: str, body: Any, status: int
) -> None:
    fake, provider = serpro
    with pytest.raises(WhatsAppApiError) as error:
        await provider.request("POST", f"{provider.api}/requisicao/{endpoint}", json=body)
    assert error.value.http_status == status
    assert fake.sent == []


def test_the_same_conversion_rules_apply_eleven_buttons_become_two_lists() -> None:
    buttons = [{"title": f"Opção {i}", "payload": f"/p{i}"} for i in range(11)]
    requests = [
        serpro_request(TO, m, WABA)
        for m in convert_response({"text": "Escolha", "buttons": buttons}).messages
    ]
    assert [r.endpoint for r in requests if r] == ["mensagem/interativa-lista"] * 2
    rows = [row["id"] for r in requests if r for row in r.body["secoes"][0]["rows"]]
    assert rows == [f"/p{i}" for i in range(11)]


def test_recipient_plus_is_a_setting() -> None:
    assert serpro_request("+5561999998888", Text("x"), WABA).body["destinatario"] == TO  # type: ignore[union-attr]
    assert serpro_request(TO, Text("x"), WABA, recipient_plus=True).body["destinatario"] == "+" + TO  # type: ignore[union-attr]


async def test_the_token_is_fetched_once_and_reused(
    serpro: tuple[FakeSerpro, SerproProvider],
) -> None:
    fake, provider = serpro
    for i in range(3):
        assert await provider.send(TO, Text(f"m{i}")) == f"REQ{i + 1:04d}"
    assert fake.token_requests == [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}]


async def test_one_token_request_for_twenty_concurrent_sends() -> None:
    async with running_serpro(FakeSerpro(token_delay=0.2)) as fake:
        provider = provider_for(fake)
        await provider.start()
        ids = await asyncio.gather(*(provider.send(TO, Text(str(i))) for i in range(20)))
        await provider.close()
    assert len(fake.token_requests) == 1
    assert len(set(ids)) == 20


async def test_an_expired_token_is_refreshed_after_a_401_and_the_send_retried(
    serpro: tuple[FakeSerpro, SerproProvider],
) -> None:
    fake, provider = serpro
    await provider.send(TO, Text("antes"))
    fake.expire_all()  # Serpro now answers 401 to the cached token
    assert await provider.send(TO, Text("depois")) == "REQ0002"
    assert len(fake.token_requests) == 2
    assert [body["body"] for _, body in fake.sent] == ["antes", "depois"]


async def test_the_cache_expires_before_the_token_does() -> None:
    now = [1000.0]
    async with running_serpro(FakeSerpro(expires_in=120)) as fake:
        provider = provider_for(fake)
        from bot.addons.whatsapp.providers.serpro.auth import MemoryTokenCache

        provider.tokens.cache = MemoryTokenCache(clock=lambda: now[0])
        await provider.start()
        await provider.send(TO, Text("1"))
        now[0] += 59  # 120 s token, refreshed 60 s early
        await provider.send(TO, Text("2"))
        now[0] += 2
        await provider.send(TO, Text("3"))
        await provider.close()
    assert len(fake.token_requests) == 2


async def test_600_seconds_when_expires_in_is_absent() -> None:
    now = [0.0]
    async with running_serpro(FakeSerpro(expires_in=None)) as fake:
        provider = provider_for(fake)
        from bot.addons.whatsapp.providers.serpro.auth import MemoryTokenCache

        provider.tokens.cache = MemoryTokenCache(clock=lambda: now[0])
        await provider.start()
        await provider.send(TO, Text("1"))
        now[0] = 539
        await provider.send(TO, Text("2"))
        now[0] = 541
        await provider.send(TO, Text("3"))
        await provider.close()
    assert len(fake.token_requests) == 2


async def test_bad_credentials_are_a_clear_error() -> None:
    async with running_serpro() as fake:
        provider = provider_for(fake, secret="wrong")
        await provider.start()
        with pytest.raises(WhatsAppApiError, match="refused the client credentials"):
            await provider.send(TO, Text("x"))
        await provider.close()
    assert fake.sent == []


async def test_read_receipts_go_to_the_configured_path(
    serpro: tuple[FakeSerpro, SerproProvider],
) -> None:
    fake, provider = serpro
    await provider.mark_read("wamid.FAKE0001", typing=True)
    assert fake.reads == [{"message_id": "wamid.FAKE0001"}]


async def test_register_uses_json_then_confirms_in_the_list(
    serpro: tuple[FakeSerpro, SerproProvider],
) -> None:
    fake, provider = serpro
    form, webhook = await register(
        provider, "https://bot.example/webhooks/whatsapp/webhook", "s3cret"
    )
    assert (
        form == "json"
        and webhook.uri == "https://bot.example/webhooks/whatsapp/webhook"
        and webhook.has_token
    )
    assert fake.webhooks[0]["jwtToken"] == "s3cret"


async def test_register_falls_back_to_plain_text_with_the_token_in_the_url() -> None:
    async with running_serpro(FakeSerpro(refuse_json_registration=True)) as fake:
        provider = provider_for(fake)
        await provider.start()
        form, webhook = await register(
            provider, "https://bot.example/webhooks/whatsapp/webhook", "s3cret"
        )
        listed = await list_webhooks(provider)
        await provider.close()
    assert form == "text"
    assert webhook.uri == "https://bot.example/webhooks/whatsapp/webhook?token=s3cret"
    assert [w.uri for w in listed] == [webhook.uri]


async def test_register_when_serpro_is_unreachable() -> None:
    provider = SerproProvider(
        f"http://127.0.0.1:{free_port()}", CLIENT_ID, CLIENT_SECRET, WABA, timeout=2
    )
    await provider.start()
    with pytest.raises(RegistrationError) as raised:
        await register(provider, "https://bot.example/w", "t")
    await provider.close()
    assert raised.value.exit_code == 4 and "unreachable" in str(raised.value)


def cli_env(monkeypatch: pytest.MonkeyPatch, url: str, **extra: str) -> None:
    monkeypatch.chdir(Path(__file__).parent)  # no .env there
    for key, value in {
        "SERPRO_CLIENT_ID": CLIENT_ID,
        "SERPRO_CLIENT_SECRET": CLIENT_SECRET,
        "SERPRO_WABA_ID": WABA,
        "SERPRO_WEBHOOK_TOKEN": "cli-secret-token",
        "SERPRO_BASE_URL": url,
        "WEBHOOK_PUBLIC_URL": "https://bot.example/webhooks/whatsapp/webhook",
        **extra,
    }.items():
        monkeypatch.setenv(key, value)


def run_cli(args: list[str]) -> int:
    # The CLI runs its own event loop; give it a thread so the fake keeps serving on ours.
    return cli(args)


async def test_the_command_registers_lists_and_deletes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_serpro() as fake:
        cli_env(monkeypatch, fake.url)
        assert await asyncio.to_thread(run_cli, ["register"]) == 0
        assert await asyncio.to_thread(run_cli, ["list"]) == 0
        assert await asyncio.to_thread(run_cli, ["delete", "wh1"]) == 0
        assert fake.webhooks == []
    out = capsys.readouterr().out
    assert (
        "Registered https://bot.example/webhooks/whatsapp/webhook (id wh1, json form, token set)"
        in out
    )
    assert "wh1\thttps://bot.example/webhooks/whatsapp/webhook\ttoken: set" in out
    assert "cli-secret-token" not in out and CLIENT_SECRET not in out


@pytest.mark.parametrize(
    ("env", "code", "message"),
    [
        ({"SERPRO_CLIENT_SECRET": "wrong"}, 3, "refused the credentials"),
        ({"SERPRO_WABA_ID": ""}, 2, "SERPRO_WABA_ID"),
        ({"WEBHOOK_PUBLIC_URL": "http://insecure.example/w"}, 2, "https://"),
    ],
)
async def test_the_command_fails_clearly(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    code: int,
    message: str,
) -> None:
    async with running_serpro() as fake:
        cli_env(monkeypatch, fake.url, **env)
        assert await asyncio.to_thread(run_cli, ["register"]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_command_reports_an_unreachable_serpro(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_env(monkeypatch, f"http://127.0.0.1:{free_port()}")
    assert run_cli(["list"]) == 4
    assert "unreachable" in capsys.readouterr().err
