"""What ``make bench`` runs: the plans (full, smoke), and the stage modules with what each
gets (:class:`Context`) and gives (:class:`Stage`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench import billing, campaign, chaos, voice
from tests.support.stack import Proc


@dataclass(frozen=True)
class Context:
    """What a stage gets: the load generator (Meta's webhook sender and a fake Graph API),
    the acker (a process that only sends webhooks and times their acks: ``bench.drive.
    acked``), the base environment of the stack, the output directory, the model, and the
    plan."""

    loadgen: Proc
    acker: Proc
    env: dict[str, str]
    out: Path
    model: Path
    smoke: bool
    direct: bool


class Stage(Protocol):
    """One figure of ``make bench`` in its own module (``bench/<name>.py``): it starts the
    stack it needs, measures against a baseline taken in the same stage, and reports."""

    name: str  # the key of its results in results.json

    def run(self, ctx: Context) -> dict[str, Any]: ...

    def checks(self, result: dict[str, Any]) -> dict[str, bool]: ...

    def rows(self, result: dict[str, Any]) -> list[str]: ...  # rows of results.md's table


# Each stage module exposes ``STAGE``; they run in this order after the single-process and
# scale-out stages, in full and smoke plans alike (a stage sizes itself by ``ctx.smoke``).
STAGES: list[Stage] = [chaos.STAGE, billing.STAGE, campaign.STAGE, voice.STAGE]


@dataclass(frozen=True)
class Plan:
    warmup: int
    users: int
    e2e_rounds: int
    e2e_messages: int
    latency_blocks: int
    latency_block_messages: int
    ack_rounds: int
    idle_rate: float
    idle_count: int
    burst_rate: float
    burst_count: int
    overload_factor: float
    overload_seconds: float
    memory_messages: int
    scale_messages: int


FULL = Plan(20, 8, 4, 150, 4, 25, 3, 10, 100, 200, 2000, 10, 30, 10_000, 400)
SMOKE = Plan(5, 4, 1, 15, 1, 5, 2, 10, 20, 100, 200, 10, 2, 300, 0)
