"""The power agent: observe the cluster and its demand, decide with :mod:`.policy`, act, record every decision.

Each step (every ``interval_s``): read the nodes from the inventory and their state from the orchestrator's
``/v1/nodes`` (a node it lists as ``ready`` is awake, ``down`` is asleep, a drain in progress is draining) and the
allocations on each; read the demand from the gateway's metrics; ask the policy; then act. ``wake`` sends the
node's magic packet and waits (across steps, up to ``wake_timeout_s``) for the orchestrator to list it ready
again, reported as ``rejoined`` or ``wake_timeout``. ``drain`` asks Nomad to drain the node (nothing new placed
on it, its allocations moved). ``sleep`` runs ``sleep_command`` for a drained node only after checking once more
that no allocation runs on it and that it is not a control node. Every decision and its outcome is recorded
(:class:`.audit.Recorder`).

The drain is one code path on both backends: the embedded orchestrator answers the same ``/v1/node/:id/drain``
and ``/eligibility`` routes (there a drain stops placing on the node and leaves its work running). On one box the
only node is the control node, so the agent never drains or sleeps it; it still observes and records. Its
progress (rounds, the last one's time and error) is what ``--health-port`` serves (:mod:`.health`), the check of
``jobs/power.nomad.hcl``.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from fleetmind.power import wake as wol
from fleetmind.power.audit import Recorder
from fleetmind.power.errors import PowerError
from fleetmind.power.nodes import Node, read_inventory
from fleetmind.power.policy import Decision, NodeState, NodeView, Observation, decide
from fleetmind.power.settings import PowerSettings
from fleetmind.power.signals import Demand, GatewayMetrics

log = logging.getLogger("fleetmind.power")
# allocation states that mean the node still holds work
ACTIVE_ALLOC = frozenset({"pending", "running"})
# what ranks first when waking (lower wakes first): the placement classes, strongest first
CLASS_RANK = {"avx512": 0, "avx2": 1, "avx": 2, "sse42": 3, "legacy": 4}


class Orchestrator(Protocol):
    """What the agent needs of the cluster client (:class:`fleetmind.cluster.client.ClusterClient`)."""

    def nodes(self) -> list[dict[str, Any]]: ...
    def node_allocations(self, node_id: str) -> list[dict[str, Any]]: ...
    def drain_node(self, node_id: str, *, deadline_s: float = ...) -> dict[str, Any]: ...
    def undrain_node(self, node_id: str) -> dict[str, Any]: ...


@dataclass
class Tracking:
    """What the agent remembers between steps."""

    waking: dict[str, float] = field(default_factory=dict)  # node -> deadline
    sleeping: set[str] = field(default_factory=set)
    last_wake_s: float | None = None
    busy_since: dict[str, float] = field(default_factory=dict)  # node -> last time it held work


def _state(nomad: dict[str, Any] | None, name: str, track: Tracking) -> NodeState:
    if name in track.waking:
        return "waking"
    if nomad is None or nomad.get("Status") != "ready":
        return "asleep"
    if nomad.get("Drain") or nomad.get("SchedulingEligibility") == "ineligible":
        return "draining"
    return "awake"


class PowerAgent:
    def __init__(
        self,
        settings: PowerSettings,
        orchestrator: Orchestrator,
        recorder: Recorder,
        *,
        metrics: Callable[[float], Demand | None] | None = None,
        clock: Callable[[], float] = time.time,
        runner: Callable[[list[str]], int] | None = None,
    ) -> None:
        self.settings = settings
        self.policy = settings.policy()
        self.orchestrator = orchestrator
        self.recorder = recorder
        gateway = GatewayMetrics(settings.metrics_url) if settings.metrics_url else None
        self.metrics = metrics or (gateway.read if gateway else (lambda _now: None))
        self.clock = clock
        self.runner = runner or _run
        self.track = Tracking()
        # progress, for the health endpoint (:mod:`.health`)
        self.rounds = 0
        self.last_round_s: float | None = None
        self.last_error: str | None = None
        self.started_s = time.time()

    def observe(self, now: float) -> tuple[Observation, dict[str, Node], dict[str, dict[str, Any]]]:
        nodes = read_inventory(self.settings.inventory)
        nomad = {str(n.get("Name")): n for n in self.orchestrator.nodes()}
        views: list[NodeView] = []
        for name, node in sorted(nodes.items()):
            entry = nomad.get(name)
            state = _state(entry, name, self.track)
            work = 0
            if entry is not None and state != "asleep":
                allocs = self.orchestrator.node_allocations(str(entry["ID"]))
                work = sum(1 for a in allocs if a.get("ClientStatus") in ACTIVE_ALLOC and not _system(a))
            if work or name not in self.track.busy_since or state in ("asleep", "waking"):
                self.track.busy_since[name] = now
            views.append(
                NodeView(
                    name=name,
                    state=state,
                    control=node.control,
                    work=work,
                    idle_s=now - self.track.busy_since[name],
                    rank=CLASS_RANK.get(node.node_class or "", 5),
                    wakeable=bool(node.mac),
                )
            )
        demand = self.metrics(now)
        local = datetime.fromtimestamp(now).astimezone()
        obs = Observation(
            now_s=now,
            day_s=local.hour * 3600 + local.minute * 60 + local.second,
            queue_depth=demand.queue_depth if demand else 0,
            p95_latency_s=demand.p95_latency_s if demand else None,
            nodes=views,
            last_wake_s=self.track.last_wake_s,
        )
        return obs, nodes, nomad

    def step(self) -> list[Decision]:
        """One observe-decide-act round; returns the decisions taken."""
        now = self.clock()
        obs, nodes, nomad = self.observe(now)
        self._follow_wakes(now, nomad)
        decisions = decide(self.policy, obs)
        for decision in decisions:
            self._act(decision, nodes[decision.node], nomad.get(decision.node), obs, now)
        return decisions

    def _follow_wakes(self, now: float, nomad: dict[str, dict[str, Any]]) -> None:
        for name, deadline in list(self.track.waking.items()):
            if (nomad.get(name) or {}).get("Status") == "ready":
                del self.track.waking[name]
                self.recorder.record("rejoined", f"{name} rejoined the cluster after its wake", {"node": name})
            elif now >= deadline:
                del self.track.waking[name]
                self.recorder.record(
                    "wake_timeout",
                    f"{name} did not rejoin within {self.settings.wake_timeout_s:g}s of its magic packet",
                    {"node": name},
                    level="warning",
                )

    def _act(self, d: Decision, node: Node, nomad: dict[str, Any] | None, obs: Observation, now: float) -> None:
        base = {"node": d.node, "reason": d.reason, **d.data}
        try:
            if d.action == "wake":
                sent = wol.wake(node, mode=self.settings.wol_mode, port=self.settings.wol_port)
                self.track.waking[d.node] = now + self.settings.wake_timeout_s
                self.track.last_wake_s = now
                self.recorder.record("wake", f"waking {d.node}: {d.reason}", {**base, **sent.to_dict()})
            elif d.action in ("drain", "undrain"):
                if nomad is None:
                    raise PowerError(f"the orchestrator does not list {d.node}")
                call = self.orchestrator.drain_node if d.action == "drain" else self.orchestrator.undrain_node
                call(str(nomad["ID"]))
                self.recorder.record(d.action, f"{d.action} {d.node}: {d.reason}", base)
            elif d.action == "sleep":
                self._sleep(d, node, nomad, base)
        except Exception as exc:  # PowerError, OSError, the cluster client's: one failure must not stop the agent
            self.recorder.record(
                "failed", f"{d.action} {d.node} failed: {exc}", {"action": d.action, **base}, level="error"
            )

    def _sleep(self, d: Decision, node: Node, nomad: dict[str, Any] | None, base: dict[str, Any]) -> None:
        # the last check before a machine goes dark: never the control node, never one holding work
        if node.control:
            raise PowerError(f"{d.node} is a control node; it is never put to sleep")
        if nomad is not None:
            allocs = self.orchestrator.node_allocations(str(nomad["ID"]))
            held = [a.get("JobID") for a in allocs if a.get("ClientStatus") in ACTIVE_ALLOC and not _system(a)]
            if held:
                raise PowerError(f"{d.node} still holds work ({', '.join(map(str, held))}); not sleeping it")
        argv = [
            a.format(inventory=self.settings.inventory, node=d.node) for a in shlex.split(self.settings.sleep_command)
        ]
        rc = self.runner(argv)
        if rc != 0:
            raise PowerError(f"the sleep command exited {rc}: {shlex.join(argv)}")
        self.track.sleeping.add(d.node)
        self.recorder.record("sleep", f"sleeping {d.node}: {d.reason}", base)

    def run(self, *, once: bool = False, stop: Callable[[], bool] = lambda: False) -> None:
        self.recorder.record("started", "power agent started", {"interval_s": self.settings.interval_s})
        while True:
            try:
                self.step()
                self.last_error = None
            except Exception as exc:  # an unreachable orchestrator: say so, try again next round
                self.last_error = str(exc)[:500]
                self.recorder.record("error", f"power agent step failed: {exc}", level="error")
            self.rounds += 1
            self.last_round_s = time.time()
            if once or stop():
                return
            # wait in short slices so a stop request (SIGTERM from the orchestrator) ends the agent promptly
            deadline = time.monotonic() + self.settings.interval_s
            while (left := deadline - time.monotonic()) > 0:
                if stop():
                    return
                time.sleep(min(left, 0.5))


def _system(alloc: dict[str, Any]) -> bool:
    return alloc.get("JobType") == "system"


def _run(argv: list[str]) -> int:
    return subprocess.run(argv, check=False, timeout=600).returncode
