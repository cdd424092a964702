"""The simulator's agent pane in headless Chromium against the full stack, wired as
`make run` wires it: the citizen asks for a person, a designer answers as the agent in the
fake Chatwoot, resolves, and the bot takes over again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Page

from tests.support.browser import headless_chromium
from tests.support.stack import (
    ROOT,
    VENV_BIN,
    Proc,
    free_port,
    start_action_server,
    start_process,
    start_rasa,
    write_endpoints,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ARTIFACTS = ROOT / "artifacts"
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
SAMPLE = ROOT / "simulator" / "static" / "sample.png"
HOOK_SECRET = "pane-webhook-secret"
SECRETS = {
    "WPP_AUTHORIZATION_TOKEN": "pane-access-token",
    "WPP_VERIFY_TOKEN": "pane-verify-token",
    "WPP_APP_SECRET": "pane-app-secret",
    "WPP_PHONE_NUMBER_IDENTIFIER": "100000000000002",
    "CHATWOOT_API_TOKEN": "pane-chatwoot-token",
    "CHATWOOT_WEBHOOK_SECRET": HOOK_SECRET,
    "CHATWOOT_ACCOUNT_ID": "1",
    "CHATWOOT_INBOX_ID": "1",
    "HANDOFF_OFFICE_HOURS": "",  # always open: the test runs at any hour
}


def text_of(response: str) -> str:
    return str(DOMAIN["responses"][response][0]["text"])


@pytest.fixture(scope="module")
def simulator_url(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ports = {name: free_port() for name in ("knowledge", "actions", "simulator", "rasa")}
    py = str(VENV_BIN / "python")
    simulator = f"http://127.0.0.1:{ports['simulator']}"
    env = {
        **SECRETS,
        "KNOWLEDGE_API_URL": f"http://127.0.0.1:{ports['knowledge']}/ask",
        "WPP_API_BASE_URL": simulator,
        "CHATWOOT_URL": simulator,
    }
    endpoints = write_endpoints(tmp_path_factory.mktemp("pane") / "endpoints.yml", ports["actions"])
    rasa = f"http://127.0.0.1:{ports['rasa']}"
    procs: list[Proc] = []
    try:
        procs.append(
            start_process(
                "knowledge",
                [py, "-m", "knowledge", "--port", str(ports["knowledge"])],
                env,
                f"http://127.0.0.1:{ports['knowledge']}/health",
                ports["knowledge"],
            )
        )
        procs.append(start_action_server(ports["actions"], env))
        procs.append(
            start_process(
                "simulator-pane",
                [
                    py,
                    "-m",
                    "simulator",
                    "--port",
                    str(ports["simulator"]),
                    "--webhook-url",
                    f"{rasa}/webhooks/whatsapp/webhook",
                    "--chatwoot-webhook-url",
                    f"{rasa}/webhooks/whatsapp/chatwoot/{HOOK_SECRET}",
                ],
                env,
                f"{simulator}/health",
                ports["simulator"],
            )
        )
        procs.append(
            start_rasa(
                ports["rasa"],
                env,
                credentials=ROOT / "credentials.yml",
                endpoints=endpoints,
                model=trained_model,
                name="rasa-pane",
            )
        )
        yield simulator
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.fixture
def page() -> Iterator[Page]:
    with headless_chromium() as browser:
        yield browser.new_page(viewport={"width": 1040, "height": 860})


def say(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def test_a_designer_answers_as_the_agent_and_resolves_back_to_the_bot(
    simulator_url: str, page: Page
) -> None:
    page.goto(simulator_url)
    page.fill("#number", "5561988880011")
    page.fill("#name", "Maria")
    page.dispatch_event("#number", "change")
    assert "handoff desligado" not in page.inner_text("#agent-sub")

    # The citizen asks for a person: told so, and the conversation opens in the pane
    # with the transcript as a private note.
    say(page, "quero falar com um atendente")
    page.wait_for_selector("text=Vou transferir você", timeout=90_000)
    page.wait_for_selector(".agent-item >> text=Maria", timeout=30_000)
    note = page.inner_text(".agent-msg.note")
    assert "Cidadão: quero falar com um atendente" in note
    bot_bubbles = page.locator(".bubble.bot").count()

    # While paused, the citizen's words reach the agent and the bot stays quiet.
    say(page, "meu IPTU veio com valor errado")
    page.wait_for_selector(".agent-msg.incoming >> text=meu IPTU veio com valor errado")
    page.wait_for_timeout(1500)
    assert page.locator(".bubble.bot").count() == bot_bubbles

    # The agent answers, with text and a file: both reach the citizen on WhatsApp.
    page.fill("#agent-text", "Olá, Maria! Sou a Ana, da Prefeitura. Vou verificar.")
    page.click("#agent-send")
    page.wait_for_selector(".bubble.bot >> text=Sou a Ana, da Prefeitura", timeout=30_000)
    page.set_input_files("#agent-file", str(SAMPLE))
    page.wait_for_selector(".bubble.bot .media img[src*='/media/']", timeout=30_000)
    page.wait_for_selector(".agent-msg.outgoing img")
    assert page.locator(".agent-warn").count() == 0  # every webhook was taken by the bot
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "agent-pane.png"))
    assert (ARTIFACTS / "agent-pane.png").stat().st_size > 20_000

    # Resolve: the bot says goodbye in the designer's words and answers again.
    page.click("#agent-resolve")
    resolved = text_of("utter_handoff_resolved")
    page.wait_for_selector(f".bubble.bot >> text={resolved[:30]}", timeout=60_000)
    page.wait_for_selector(".agent-status >> text=resolved")
    assert page.is_disabled("#agent-send")
    say(page, "você é um robô?")
    page.wait_for_selector(f"text={text_of('utter_iamabot')[:30]}", timeout=60_000)

    # Asking again opens a new conversation, and the pane turns to it.
    say(page, "quero falar com um atendente")
    page.wait_for_selector(".agent-item:nth-child(2)", timeout=60_000)
    assert page.inner_text(".agent-item.selected .agent-status").endswith("open")
    assert not page.is_disabled("#agent-send")
