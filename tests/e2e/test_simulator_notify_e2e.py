"""The simulator's notification trigger in headless Chromium against a real ``rasa run``:
a designer notifies a simulated number, sees the template arrive in its chat and the
notification's ticks move on as the status webhooks reach the bot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.support.browser import headless_chromium
from tests.support.stack import ROOT, VENV_BIN, Proc, free_port, start_process, start_rasa

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ARTIFACTS = ROOT / "artifacts"
SECRETS = {
    "WPP_AUTHORIZATION_TOKEN": "notify-browser-access-token",
    "WPP_VERIFY_TOKEN": "notify-browser-verify-token",
    "WPP_APP_SECRET": "notify-browser-app-secret",
    "WPP_PHONE_NUMBER_IDENTIFIER": "100000000000002",
    "WPP_NOTIFY_TOKEN": "notify-browser-notify-token",
}


@pytest.fixture(scope="module")
def simulator_url(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The simulator and rasa run, wired as `make run` wires them (no ingress: webhooks go
    straight to rasa run, which records the statuses)."""
    sim_port, rasa_port = free_port(), free_port()
    database = tmp_path_factory.mktemp("notify-browser") / "proactive.db"
    env = {
        **SECRETS,
        "WPP_API_BASE_URL": f"http://127.0.0.1:{sim_port}",
        "WPP_PROACTIVE_DB_URL": f"sqlite:///{database}",
    }
    argv = [str(VENV_BIN / "python"), "-m", "simulator", "--port", str(sim_port)]
    argv += ["--webhook-url", f"http://127.0.0.1:{rasa_port}/webhooks/whatsapp/webhook"]
    argv += ["--notify-url", f"http://127.0.0.1:{rasa_port}/webhooks/whatsapp/notify"]
    procs: list[Proc] = []
    try:
        procs.append(
            start_process(
                "simulator-notify",
                argv,
                env,
                f"http://127.0.0.1:{sim_port}/health",
                sim_port,
            )
        )
        procs.append(
            start_rasa(
                rasa_port,
                env,
                credentials=ROOT / "credentials.yml",
                model=trained_model,
                name="rasa-simulator-notify",
            )
        )
        yield f"http://127.0.0.1:{sim_port}"
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.fixture
def page() -> Iterator[Page]:
    with headless_chromium() as browser:
        yield browser.new_page(viewport={"width": 800, "height": 900})


def test_a_template_notification_arrives_in_the_chat_and_its_ticks_move_to_read(
    simulator_url: str, page: Page
) -> None:
    page.goto(simulator_url)
    page.fill("#number", "5561977770001")
    page.dispatch_event("#number", "change")
    page.fill("#notify-template", "lembrete_iptu")
    page.fill("#notify-params", "10/03")
    page.click("#notify-send")

    # The bot sent the template to the simulated number: it is in that number's chat.
    page.wait_for_selector(".bubble.bot .template-tag", timeout=30_000)
    assert page.inner_text(".bubble.bot .body-text") == "lembrete_iptu (pt_BR)"
    assert page.inner_text(".bubble.bot .footer-text") == "10/03"  # its body parameter
    # Its ticks, as the bot's notify API reports them, moved on with the status webhooks.
    entry = page.wait_for_selector(".notify-entry[data-status=read]", timeout=30_000)
    assert entry is not None
    history = (entry.get_attribute("data-history") or "").split()
    assert history[0] == "sent" and history[-1] == "read", history
    assert page.inner_text(".notify-entry .notify-ticks.read") == "✓✓"
    assert page.inner_text(".notify-entry .notify-what") == "lembrete_iptu → 5561977770001"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "simulator-notify.png"))


def test_a_response_to_a_number_that_never_wrote_is_refused_with_the_bots_reason(
    simulator_url: str, page: Page
) -> None:
    page.goto(simulator_url)
    page.fill("#number", "5561977770002")
    page.dispatch_event("#number", "change")
    page.wait_for_selector("#notify-response option[value=utter_greet]", state="attached")
    page.select_option("#notify-kind", "response")
    page.select_option("#notify-response", "utter_greet")
    page.click("#notify-send")
    page.wait_for_selector("#notify-error:has-text('409')", timeout=30_000)
    assert page.inner_text("#notify-error").startswith("HTTP 409: outside_service_window")
    assert page.locator(".notify-entry").count() == 0
    assert page.locator(".bubble.bot").count() == 0  # nothing was sent
