"""The simulator page in headless Chromium against the full stack, as a designer uses it."""

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
SECRETS = {
    "WPP_AUTHORIZATION_TOKEN": "browser-access-token",
    "WPP_VERIFY_TOKEN": "browser-verify-token",
    "WPP_APP_SECRET": "browser-app-secret",
    "WPP_PHONE_NUMBER_IDENTIFIER": "100000000000002",
}


@pytest.fixture(scope="module")
def simulator_url(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Knowledge service, action server, simulator and rasa run, wired as `make run` wires them."""
    ports = {name: free_port() for name in ("knowledge", "actions", "simulator", "rasa")}
    py = str(VENV_BIN / "python")
    env = {
        **SECRETS,
        "KNOWLEDGE_API_URL": f"http://127.0.0.1:{ports['knowledge']}/ask",
        "WPP_API_BASE_URL": f"http://127.0.0.1:{ports['simulator']}",
    }
    endpoints = write_endpoints(
        tmp_path_factory.mktemp("browser") / "endpoints.yml", ports["actions"]
    )
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
                "simulator",
                [
                    py,
                    "-m",
                    "simulator",
                    "--port",
                    str(ports["simulator"]),
                    "--webhook-url",
                    f"http://127.0.0.1:{ports['rasa']}/webhooks/whatsapp/webhook",
                ],
                env,
                f"http://127.0.0.1:{ports['simulator']}/health",
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
                name="rasa-browser",
            )
        )
        yield f"http://127.0.0.1:{ports['simulator']}"
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.fixture
def page() -> Iterator[Page]:
    with headless_chromium() as browser:
        yield browser.new_page(viewport={"width": 460, "height": 900})


def test_oi_shows_the_menu_as_a_list_and_a_picked_service_is_answered(
    simulator_url: str, page: Page
) -> None:
    greet = DOMAIN["responses"]["utter_greet"][0]
    saude = next(
        v
        for v in DOMAIN["responses"]["utter_service_info"]
        if v.get("condition", [{}])[0].get("value") == "saude"
    )
    page.goto(simulator_url)
    page.fill("#number", "5561988880001")
    page.dispatch_event("#number", "change")
    page.fill("#text", "oi")
    page.press("#text", "Enter")

    page.wait_for_selector(".bubble.bot .list-open", timeout=60_000)
    assert "Prefeitura de Nova Aurora" in page.inner_text(".bubble.bot")
    assert page.inner_text(".list-open").endswith("Ver opções")
    page.click(".list-open")
    rows = page.locator(".row .row-title").all_inner_texts()
    assert rows == [b["title"] for b in greet["buttons"]]

    page.click(".row >> text=Saúde (UBS)")
    page.wait_for_selector("text=Essa resposta ajudou?", timeout=60_000)
    first_line = saude["text"].split("\n")[1][:40]
    assert first_line in page.inner_text(".chat")
    page.wait_for_selector(".bubble.user .ticks.read", timeout=10_000)  # the bot marked it read
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "simulator.png"))
    assert (ARTIFACTS / "simulator.png").stat().st_size > 10_000


def test_two_numbers_keep_separate_conversations(simulator_url: str, page: Page) -> None:
    page.goto(simulator_url)
    page.fill("#number", "5561988880002")
    page.dispatch_event("#number", "change")
    page.fill("#text", "você é um robô?")
    page.press("#text", "Enter")
    iamabot = DOMAIN["responses"]["utter_iamabot"][0]["text"]
    page.wait_for_selector(f"text={iamabot[:30]}", timeout=60_000)

    page.fill("#number", "5561988880003")
    page.dispatch_event("#number", "change")
    page.wait_for_timeout(1500)
    assert page.locator(".bubble").count() == 0  # the new number's conversation is empty
    page.fill("#number", "5561988880002")
    page.dispatch_event("#number", "change")
    page.wait_for_selector(f"text={iamabot[:30]}", timeout=10_000)
