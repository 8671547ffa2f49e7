"""The power policy, pure: what the cluster looks like now in, what to wake, drain, undrain or sleep out.

It holds no clock and no sockets, so the agent, the tests and ``bench.power`` run the very same decisions.

Inputs (:class:`Observation`): the demand (requests waiting plus in flight, ``queue_depth``), the p95 latency of
recent requests against ``latency_target_s``, and each node's state, whether it is a control node, how much work
(allocations, requests) it holds and how long it has been idle. The rules, in order:

1. **Floor.** At least ``min_awake`` nodes stay awake (or waking), more while a :class:`Window` of the schedule
   says so (office hours, say).
2. **Pressure wakes.** The nodes wanted are ``ceil(queue_depth / (slots_per_node * high_water))``: demand keeps
   each node below ``high_water`` of its slots, so the spare slots absorb a burst while a node boots. A p95 over
   the target asks for one node more than are up. A node being drained is taken back first (undrain: it is still
   up); then sleeping nodes are woken, best placement class first, and each counts as capacity while it boots.
3. **Idle drains.** With no pressure, one awake node at a time is drained when it has been idle for
   ``idle_before_sleep_s``, no wake happened in the last ``cooldown_s``, and the nodes left keep demand under
   ``low_water`` of their slots and meet the floor. Never a control node.
4. **Drained sleeps.** A draining node sleeps once it holds no work; a node holding work never sleeps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

NodeState = Literal["awake", "draining", "asleep", "waking", "sleeping"]
Action = Literal["wake", "drain", "undrain", "sleep"]
DAY_S = 86400


@dataclass(frozen=True)
class Window:
    """From ``start_h`` to ``end_h`` (hours of the local day; may wrap past midnight) keep ``min_awake`` up."""

    start_h: float
    end_h: float
    min_awake: int

    def __post_init__(self) -> None:
        if not (0 <= self.start_h < 24 and 0 <= self.end_h <= 24):
            raise ValueError(f"schedule hours must lie in 0..24, got {self.start_h}-{self.end_h}")
        if self.min_awake < 0:
            raise ValueError("a schedule window's min_awake cannot be negative")

    def covers(self, day_s: float) -> bool:
        hour = (day_s % DAY_S) / 3600
        if self.start_h <= self.end_h:
            return self.start_h <= hour < self.end_h
        return hour >= self.start_h or hour < self.end_h

    @classmethod
    def parse(cls, text: str) -> Window:
        """``"08:00-18:00=3"`` → 08:00 to 18:00, keep three nodes awake."""
        try:
            span, count = text.strip().split("=")
            start, end = span.split("-")
            return cls(_hours(start), _hours(end), int(count))
        except ValueError as exc:
            raise ValueError(f"schedule window {text!r} is not like 08:00-18:00=3 ({exc})") from None


def _hours(text: str) -> float:
    hh, _, mm = text.strip().partition(":")
    hour, minute = int(hh), int(mm or 0)
    if not (0 <= hour <= 24 and 0 <= minute < 60):
        raise ValueError(f"{text!r} is not a time of day")
    return hour + minute / 60


@dataclass(frozen=True)
class PolicyConfig:
    latency_target_s: float = 10.0
    slots_per_node: int = 4
    high_water: float = 0.6
    low_water: float = 0.3
    min_awake: int = 1
    idle_before_sleep_s: float = 600.0
    cooldown_s: float = 300.0
    schedule: tuple[Window, ...] = ()

    def __post_init__(self) -> None:
        if self.latency_target_s <= 0:
            raise ValueError("latency_target_s must be positive")
        if self.slots_per_node < 1:
            raise ValueError("slots_per_node must be at least 1")
        if not 0 < self.low_water < self.high_water <= 1:
            raise ValueError("need 0 < low_water < high_water <= 1")
        if self.min_awake < 1:
            raise ValueError("min_awake must be at least 1 (someone has to answer)")
        if self.idle_before_sleep_s < 0 or self.cooldown_s < 0:
            raise ValueError("idle_before_sleep_s and cooldown_s cannot be negative")

    def floor(self, day_s: float) -> int:
        """How many nodes must be awake at this time of day."""
        return max([self.min_awake, *(w.min_awake for w in self.schedule if w.covers(day_s))])


@dataclass(frozen=True)
class NodeView:
    name: str
    state: NodeState
    control: bool = False
    work: int = 0
    idle_s: float = 0.0
    rank: int = 0  # lower wakes first (the better placement class)
    wakeable: bool = True


@dataclass(frozen=True)
class Observation:
    now_s: float
    day_s: float
    queue_depth: int
    p95_latency_s: float | None
    nodes: Sequence[NodeView]
    last_wake_s: float | None = None


@dataclass(frozen=True)
class Decision:
    action: Action
    node: str
    reason: str
    data: dict[str, object] = field(default_factory=dict)


def decide(config: PolicyConfig, obs: Observation) -> list[Decision]:
    """The decisions for this observation (none when nothing should change)."""
    up = [n for n in obs.nodes if n.state in ("awake", "waking")]
    draining = [n for n in obs.nodes if n.state == "draining"]
    asleep = sorted((n for n in obs.nodes if n.state == "asleep" and n.wakeable), key=lambda n: (n.rank, n.name))
    floor = config.floor(obs.day_s)
    wanted = max(floor, math.ceil(obs.queue_depth / (config.slots_per_node * config.high_water)))
    slow = obs.p95_latency_s is not None and obs.p95_latency_s > config.latency_target_s
    if slow:
        wanted = max(wanted, len(up) + 1)
    facts: dict[str, object] = {
        "queue_depth": obs.queue_depth,
        "p95_latency_s": obs.p95_latency_s,
        "up": len(up),
        "wanted": wanted,
        "floor": floor,
    }
    decisions: list[Decision] = []
    missing = wanted - len(up)
    why = "p95 latency over target" if slow else ("below the floor" if wanted == floor else "queue depth")
    for node in sorted(draining, key=lambda n: (n.rank, n.name))[: max(missing, 0)]:
        decisions.append(Decision("undrain", node.name, f"{why}: taking back a draining node", facts))
        missing -= 1
    for node in asleep[: max(missing, 0)]:
        decisions.append(Decision("wake", node.name, f"{why}: {len(up)} up, {wanted} wanted", facts))
    if missing > 0:
        return decisions
    taken_back = {d.node for d in decisions}
    for node in draining:
        if node.name not in taken_back and node.work == 0 and not node.control:
            decisions.append(Decision("sleep", node.name, "drained and holding no work", facts))
    if decisions or slow:
        return decisions
    recently_woken = obs.last_wake_s is not None and obs.now_s - obs.last_wake_s < config.cooldown_s
    awake = [n for n in up if n.state == "awake"]
    if recently_woken or len(awake) - 1 < floor or len(up) - 1 < floor:
        return decisions
    capacity_left = (len(up) - 1) * config.slots_per_node * config.low_water
    if obs.queue_depth > capacity_left:
        return decisions
    idle = [n for n in awake if not n.control and n.idle_s >= config.idle_before_sleep_s]
    if idle:
        # the worst placement class goes first, the longest idle among equals
        node = max(idle, key=lambda n: (n.rank, n.idle_s, n.name))
        decisions.append(Decision("drain", node.name, f"idle for {node.idle_s:.0f}s and not needed", facts))
    return decisions
