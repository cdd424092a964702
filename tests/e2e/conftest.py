"""A real `rasa run` with the WhatsApp channel and a fake Graph API, shared by e2e tests."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.addons.whatsapp.inbound.signature import sign
from tests.fakes.graph import FakeGraph, running_graph
from tests.support.stack import ROOT, Proc, free_port, start_rasa, write_endpoints
from tests.support.threaded import InThread

E2E_SECRETS = {
    "WPP_AUTHORIZATION_TOKEN": "e2e-access-token",
    "WPP_VERIFY_TOKEN": "e2e-verify-token",
    "WPP_PHONE_NUMBER_IDENTIFIER": "100000000000002",
    "WPP_APP_SECRET": "e2e-app-secret",
}


@dataclass
class WhatsAppStack:
    rasa: Proc
    graph: FakeGraph

    def post_webhook(self, payload: Any) -> int:
        """One signed delivery; the HTTP status (a 4xx or 5xx is returned, not raised)."""
        body = json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.rasa.url}/webhooks/whatsapp/webhook",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign(E2E_SECRETS["WPP_APP_SECRET"], body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    def health(self) -> tuple[int, dict[str, Any]]:
        """``/health``: (status, body)."""
        try:
            with urllib.request.urlopen(f"{self.rasa.url}/webhooks/whatsapp/health") as answer:
                return int(answer.status), json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return int(error.code), json.loads(error.read())

    def metrics(self) -> str:
        url = f"{self.rasa.url}/webhooks/whatsapp/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode("utf-8"))

    def wait_for_sent(self, to: str, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent = [
                b
                for b in self.graph.sent
                if b.get("to") in (to, "+" + to) or (b.get("recipient") == to and "to" not in b)
            ]
            if len(sent) >= count:
                return sent
            time.sleep(0.2)
        raise AssertionError(f"expected {count} message(s) to {to}, got {self.graph.sent}")


@contextmanager
def cloud_stack(
    model: Path,
    endpoints: Path,
    name: str,
    env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
    credentials: Path = ROOT / "credentials.yml",
) -> Iterator[WhatsAppStack]:
    """`rasa run` with the Cloud API channel pointed at a fake Graph API in a thread
    (``env``: extra settings, e.g. ``WPP_QUEUE_SIZE``; ``extra_args``: more ``rasa run``
    options, e.g. ``--enable-api``; ``credentials``: another channel list, e.g. with
    Rasa's REST channel too)."""
    fake = FakeGraph(token=E2E_SECRETS["WPP_AUTHORIZATION_TOKEN"])
    with InThread(lambda: running_graph(fake)) as graph:
        env = {
            **E2E_SECRETS,
            "WPP_API_BASE_URL": graph.url,
            "WPP_TYPING_INDICATOR": "true",
            **(env or {}),
        }
        with start_rasa(
            free_port(),
            env,
            credentials=credentials,
            endpoints=endpoints,
            model=model,
            name=name,
            extra_args=extra_args,
        ) as rasa:
            yield WhatsAppStack(rasa, graph)


# The shared stack's tokens: Rasa's HTTP API and the notify API.
API_TOKEN = "e2e-rasa-api-token"
NOTIFY_TOKEN = "e2e-notify-token"


@pytest.fixture(scope="session")
def whatsapp_stack(
    trained_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WhatsAppStack]:
    """One `rasa run` for every module that needs no setting of its own (each start costs
    about 40 s of the CI budget): the channel's defaults, no action server, Rasa's HTTP API
    (``--enable-api``, ``API_TOKEN``), the notify API (``NOTIFY_TOKEN``) and a proactive
    database of its own. Each module writes as numbers of its own."""
    folder = tmp_path_factory.mktemp("e2e")
    endpoints = write_endpoints(folder / "endpoints.yml", None)
    env = {
        "WPP_NOTIFY_TOKEN": NOTIFY_TOKEN,
        "WPP_PROACTIVE_DB_URL": f"sqlite:///{folder / 'proactive.db'}",
    }
    args = ["--enable-api", "--auth-token", API_TOKEN]
    with cloud_stack(trained_model, endpoints, "rasa-whatsapp-e2e", env, args) as stack:
        yield stack
