"""Property-based fuzzing of the webhook: thousands of mutated, correctly signed payloads.

Whatever the mutation, the server answers 200 or a 4xx (never a 5xx for a client's error),
keeps running, and the valid message added to each batch is still handled exactly once.
Mutations stay inside ``entry`` (it remains a list), so every example carries the valid
message; a body that is not a webhook object at all is tests/test_webhook_http.py's.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.addons.whatsapp.inbound.signature import sign
from tests.channel_harness import APP_SECRET, Served, serve_channel
from tests.support.threaded import InThread
from tests.whatsapp_fixtures import fixture, fixture_names

FIXTURES = [fixture(n) for n in fixture_names("inbound_") + fixture_names("status_")]
EXAMPLES = 1500
_ids = itertools.count()
CARRIED: list[str] = []  # the valid message's wamid of every example the server accepted

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, (*prefix, index))


@st.composite
def mutated_payloads(draw: st.DrawFn) -> dict[str, Any]:
    payload = copy.deepcopy(draw(st.sampled_from(FIXTURES)))
    for _ in range(draw(st.integers(1, 4))):
        # Inside the batch: ``entry`` itself stays a list that the valid entry joins.
        candidates = [p for p in paths(payload) if len(p) > 1 and p[0] == "entry"]
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = payload
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return payload


def valid_change(wamid: str) -> dict[str, Any]:
    change = copy.deepcopy(fixture("inbound_text")["entry"][0]["changes"][0])
    change["value"]["messages"][0]["id"] = wamid
    return change


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    # Every valid message comes from one sender, faster than its turns: no per-sender share.
    def serve() -> Any:
        return serve_channel(queue_size=100_000, sender_queue_size=100_000, mark_read=False)

    with InThread(serve) as s:
        yield s


def post(served: Served, payload: dict[str, Any]) -> int:
    raw = json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{served.url}/webhooks/whatsapp/webhook",
        data=raw,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(APP_SECRET, raw)},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def handled(served: Served, timeout: float = 30.0) -> Counter[str]:
    """How many times each message reached the bot, once nothing is left queued and a quiet
    moment has passed (a second handling would show up by then)."""
    deadline = time.monotonic() + timeout
    dispatcher = served.channel.dispatcher
    assert dispatcher is not None
    while dispatcher.depth and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    return Counter(str(m.message_id) for m in served.agent.messages)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # the same 1,500 fresh examples every run, none replayed
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=mutated_payloads())
def test_mutated_payloads_never_break_the_server_or_the_rest_of_the_batch(
    served: Served, payload: dict[str, Any]
) -> None:
    wamid = f"wamid.FUZZ{next(_ids)}"
    payload["entry"].append({"id": "100000000000001", "changes": [valid_change(wamid)]})
    # Whatever the rest of the batch holds, the valid message is accepted.
    assert post(served, payload) == 200
    CARRIED.append(wamid)


def test_each_fuzzed_batchs_valid_message_was_handled_exactly_once(served: Served) -> None:
    counts = handled(served)
    # Hypothesis ran the examples (it may drop a few it finds identical).
    assert len(CARRIED) >= EXAMPLES * 0.9, len(CARRIED)
    assert {wamid: counts[wamid] for wamid in CARRIED} == {wamid: 1 for wamid in CARRIED}


def test_the_server_still_answers_after_the_fuzzing(served: Served) -> None:
    wamid = f"wamid.AFTER{next(_ids)}"
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [valid_change(wamid)]}],
    }
    assert post(served, payload) == 200
    assert handled(served)[wamid] == 1
