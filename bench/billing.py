"""Billable messages per answered question, with the text + buttons joining on and off.

Since October 2026 every message the bot sends in a service conversation is billed. This
stage asks answerable knowledge questions (``tests/data/knowledge_questions.yml``) as
WhatsApp citizens of a real ``rasa run`` with the action server and the knowledge service,
and counts the messages the fake Graph API accepted (``tests/fakes/graph.py``: message
bodies only; read receipts and the typing indicator are not messages and are not billed).
A question counts as answered when its turn offered the "Essa resposta ajudou?" buttons.
The same questions are asked twice in one run, with ``WPP_MERGE_TEXT_BUTTONS`` on (as
deployed) and off (the channel before the joining: each response its own message).
"""

from __future__ import annotations

import json
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.loadgen import LoadGenerator
from knowledge.evaluation import load_questions
from tests.fakes.graph import FakeGraph, running_graph
from tests.support.stack import (
    ROOT,
    VENV_BIN,
    free_port,
    start_action_server,
    start_process,
    start_rasa,
    wait_ready,
    write_endpoints,
)
from tests.support.threaded import InThread

QUESTIONS = ROOT / "tests" / "data" / "knowledge_questions.yml"
FEEDBACK_IDS = ["/affirm", "/deny"]  # utter_ask_feedback's buttons (domain.yml)
SMOKE_QUESTIONS = 3
FULL_QUESTIONS = 40
QUIET_SECONDS = 2.0  # no new message for this long after the last reply: the turns are over


def asks_feedback(body: dict[str, Any]) -> bool:
    """Whether a Graph API message body offers the feedback question's buttons."""
    interactive = body.get("interactive") or {}
    buttons = (interactive.get("action") or {}).get("buttons") or []
    return [b.get("reply", {}).get("id") for b in buttons] == FEEDBACK_IDS


def per_question(sent: list[dict[str, Any]], senders: list[str]) -> dict[str, Any]:
    """Messages each sender received, and their mean over the answered questions."""
    by_sender: dict[str, list[dict[str, Any]]] = {s: [] for s in senders}
    for body in sent:
        to = str(body.get("to", "")).lstrip("+")
        if to in by_sender:
            by_sender[to].append(body)
    answered = [s for s, bodies in by_sender.items() if any(asks_feedback(b) for b in bodies)]
    messages = sum(len(by_sender[s]) for s in answered)
    return {
        "asked": len(senders),
        "answered": len(answered),
        "messages": messages,
        "per_answered": round(messages / len(answered), 3) if answered else None,
    }


def ask_all(
    rasa_url: str, generator: LoadGenerator, graph: FakeGraph, questions: list[str], tag: str
) -> dict[str, Any]:
    """Ask each question from its own citizen, wait for the turns to end, count."""
    senders = [f"55619{tag}{index:05d}" for index in range(len(questions))]
    for sender, question in zip(senders, questions, strict=True):
        body, headers = generator.webhook(sender, question)
        request = urllib.request.Request(
            f"{rasa_url}/webhooks/whatsapp/webhook", data=body, headers=headers
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            if answer.status != 200:
                raise RuntimeError(f"the webhook answered {answer.status}")
    deadline = time.monotonic() + 60 + 5 * len(questions)
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        mine = [b for b in graph.sent if str(b.get("to", "")).lstrip("+") in senders]
        replied = {str(b.get("to", "")).lstrip("+") for b in mine}
        if len(mine) != seen:
            seen, quiet_since = len(mine), time.monotonic()
        elif len(replied) == len(senders) and time.monotonic() - quiet_since >= QUIET_SECONDS:
            break
        time.sleep(0.1)
    return per_question(graph.sent, senders)


class Billing:
    name = "billing"

    def run(self, ctx: Any) -> dict[str, Any]:
        count = SMOKE_QUESTIONS if ctx.smoke else FULL_QUESTIONS
        questions = [q.text for q in load_questions(QUESTIONS) if q.answerable][:count]
        generator = LoadGenerator(
            ctx.env["WPP_APP_SECRET"],
            ctx.env["WPP_AUTHORIZATION_TOKEN"],
            ctx.env["WPP_PHONE_NUMBER_IDENTIFIER"],
        )
        folder: Path = ctx.out / "billing"
        folder.mkdir(parents=True, exist_ok=True)
        ports = {name: free_port() for name in ("knowledge", "actions")}
        knowledge_env = {"KNOWLEDGE_API_URL": f"http://127.0.0.1:{ports['knowledge']}/ask"}
        endpoints = write_endpoints(folder / "endpoints.yml", ports["actions"])
        fake = FakeGraph(token=ctx.env["WPP_AUTHORIZATION_TOKEN"])
        result: dict[str, Any] = {"questions": len(questions)}
        with (
            InThread(lambda: running_graph(fake)) as graph,
            start_process(
                "bench-knowledge",
                [str(VENV_BIN / "python"), "-m", "knowledge", "--port", str(ports["knowledge"])],
                knowledge_env,
                f"http://127.0.0.1:{ports['knowledge']}/health",
                ports["knowledge"],
            ),
            start_action_server(ports["actions"], knowledge_env),
            ExitStack() as started,
        ):
            # Both started at once (the count does not depend on load): one start's wait.
            runs = {}
            for label, merge, tag in (("after", "true", "1"), ("before", "false", "2")):
                env = {
                    **ctx.env,
                    **knowledge_env,
                    "WPP_API_BASE_URL": graph.url,
                    "WPP_MERGE_TEXT_BUTTONS": merge,
                }
                rasa = started.enter_context(
                    start_rasa(
                        free_port(),
                        env,
                        credentials=ROOT / "credentials.yml",
                        endpoints=endpoints,
                        model=ctx.model,
                        name=f"bench-billing-{label}",
                        wait=False,
                    )
                )
                runs[label] = (rasa, merge, tag)
            for label, (rasa, merge, tag) in runs.items():
                wait_ready(rasa)
                result[label] = ask_all(rasa.url, generator, graph, questions, tag)
                print(f"  {label} (WPP_MERGE_TEXT_BUTTONS={merge}): {result[label]}", flush=True)
        after, before = result["after"]["per_answered"], result["before"]["per_answered"]
        result["ratio"] = round(after / before, 3) if after and before else None
        (folder / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        return result

    def checks(self, result: dict[str, Any]) -> dict[str, bool]:
        after, before = result["after"], result["before"]
        answered = after["answered"] > 0 and after["answered"] == before["answered"]
        return {
            "billing: the same questions answered with and without joining": answered,
            "billing: fewer billable messages per answered question": answered
            and after["per_answered"] < before["per_answered"],
            "billing: at most 1.1 messages per answered question": answered
            and after["per_answered"] <= 1.1,
        }

    def rows(self, result: dict[str, Any]) -> list[str]:
        after, before = result["after"], result["before"]
        return [
            f"| Billable messages per answered question ({after['answered']} of"
            f" {after['asked']} knowledge questions answered) | {after['per_answered']}"
            f" (text + buttons joined) | {before['per_answered']} (WPP_MERGE_TEXT_BUTTONS=false)"
            f" | **{result['ratio']}** | < before, ≤ 1.1 |"
        ]


STAGE = Billing()
