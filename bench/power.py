"""Benchmark: the power policy against a simulated cluster over a recorded day — energy saved, requests kept.

Replays ``bench/data/power_trace.csv`` (a day of arrivals per minute, bursty by day, idle by night; made by
``python -m bench.power_trace`` with a fixed seed) through :func:`fleetmind.power.policy.decide`, the same code
``fleetmind power agent`` runs, against a simulated cluster in one-second steps: one control node and seven
workers, each with ``--slots`` concurrent requests, service times drawn (seeded) around ``--service-s``, a node
taking ``--wake-s`` from magic packet to serving and ``--sleep-s`` to suspend. Requests wait in one FIFO queue
and go to free slots of awake nodes that are not draining; a request that waits ``--drop-after-s`` is dropped.
Energy (over the 24 hours of the trace) counts a node-hour per hour awake, waking or going to sleep, and
``--standby`` of one while asleep (Wake-on-LAN keeps the NIC powered). The same trace on the same cluster with
every node always on is the baseline.

Run from the repo root: ``python -m bench.power``. Goals: at least 40% less energy than always-on, no request
dropped, at most 1% of requests waiting longer than the latency target.
"""

from __future__ import annotations

import argparse
import random
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from bench import power_trace
from fleetmind.power.policy import DAY_S, Decision, NodeState, NodeView, Observation, PolicyConfig, Window, decide


@dataclass
class SimNode:
    name: str
    control: bool
    state: NodeState = "awake"
    until: float = 0.0  # when a waking or sleeping transition ends
    running: list[float] = field(default_factory=list)  # finish times of requests in flight
    last_busy: float = 0.0


@dataclass
class Result:
    requests: int = 0
    dropped: int = 0
    wakes: int = 0
    sleeps: int = 0
    energy: float = 0.0  # node-hours
    awake_s_by_node: dict[str, float] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)


def arrivals_of(trace: list[int], seed: int) -> list[float]:
    rng = random.Random(seed)
    times: list[float] = []
    for minute, count in enumerate(trace):
        times.extend(sorted(minute * 60 + rng.random() * 60 for _ in range(count)))
    return times


def simulate(
    trace: list[int],
    config: PolicyConfig | None,
    *,
    workers: int = 7,
    slots: int = 4,
    service_s: float = 8.0,
    wake_s: float = 45.0,
    sleep_s: float = 15.0,
    standby: float = 0.05,
    tick_s: float = 10.0,
    drop_after_s: float = 300.0,
    seed: int = 1,
) -> Result:
    """Run a day; ``config=None`` keeps every node on (the baseline)."""
    rng = random.Random(seed + 1)
    nodes = [SimNode("control-1", True)] + [SimNode(f"worker-{i + 1}", False) for i in range(workers)]
    arrivals = deque(arrivals_of(trace, seed))
    queue: deque[float] = deque()
    recent_waits: deque[tuple[float, float]] = deque()  # (start time, wait) of the last minute
    res = Result(requests=len(arrivals))
    last_wake: float | None = None
    for t in range(DAY_S + 3600):  # an hour past midnight lets the last requests finish
        now = float(t)
        while arrivals and arrivals[0] <= now:
            queue.append(arrivals.popleft())
        for node in nodes:
            node.running = [f for f in node.running if f > now]
            if node.running:
                node.last_busy = now
            if node.state == "waking" and now >= node.until:
                node.state, node.last_busy = "awake", now
            elif node.state == "sleeping" and now >= node.until:
                node.state = "asleep"
        while queue and now - queue[0] >= drop_after_s:
            queue.popleft()
            res.dropped += 1
        for node in nodes:
            if node.state != "awake":
                continue
            while queue and len(node.running) < slots:
                arrived = queue.popleft()
                wait = now - arrived
                res.waits.append(wait)
                recent_waits.append((now, wait))
                node.running.append(now + rng.expovariate(1 / service_s))
                node.last_busy = now
        while recent_waits and recent_waits[0][0] < now - 60:
            recent_waits.popleft()
        for node in nodes if t < DAY_S else ():
            on = node.state != "asleep"
            res.energy += (1.0 if on else standby) / 3600
            res.awake_s_by_node[node.name] = res.awake_s_by_node.get(node.name, 0.0) + (1.0 if on else 0.0)
        if config is None or t % int(tick_s):
            continue
        waits = sorted(w for _, w in recent_waits)
        p95 = waits[min(len(waits) - 1, int(0.95 * len(waits)))] if waits else None
        obs = Observation(
            now_s=now,
            day_s=now % DAY_S,
            queue_depth=len(queue) + sum(len(n.running) for n in nodes),
            p95_latency_s=p95,
            nodes=[
                NodeView(n.name, n.state, control=n.control, work=len(n.running), idle_s=now - n.last_busy)
                for n in nodes
            ],
            last_wake_s=last_wake,
        )
        for decision in decide(config, obs):
            last_wake = apply(decision, {n.name: n for n in nodes}, now, wake_s, sleep_s, res) or last_wake
    return res


def apply(
    d: Decision, nodes: dict[str, SimNode], now: float, wake_s: float, sleep_s: float, res: Result
) -> float | None:
    node = nodes[d.node]
    if d.action == "wake" and node.state == "asleep":
        node.state, node.until = "waking", now + wake_s
        res.wakes += 1
        return now
    if d.action == "drain" and node.state == "awake":
        node.state = "draining"
    elif d.action == "undrain" and node.state == "draining":
        node.state = "awake"
    elif d.action == "sleep" and node.state == "draining":
        if node.running or node.control:  # the policy must never ask this; the bench would say so
            raise AssertionError(f"policy asked to sleep {node.name} while it holds work or is the control node")
        node.state, node.until = "sleeping", now + sleep_s
        res.sleeps += 1
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", type=Path, default=power_trace.TRACE)
    parser.add_argument("--workers", type=int, default=7)
    parser.add_argument("--slots", type=int, default=4, help="concurrent requests per node")
    parser.add_argument("--service-s", type=float, default=8.0, help="mean service time of a request")
    parser.add_argument("--wake-s", type=float, default=45.0, help="magic packet to serving (resume from suspend)")
    parser.add_argument("--sleep-s", type=float, default=15.0, help="drained to asleep")
    parser.add_argument("--standby", type=float, default=0.05, help="power asleep, as a share of awake")
    parser.add_argument("--latency-target-s", type=float, default=10.0, help="longest acceptable wait in the queue")
    parser.add_argument("--drop-after-s", type=float, default=300.0, help="a client gives up after this wait")
    parser.add_argument("--idle-s", type=float, default=600.0, help="idle time before a node is drained")
    parser.add_argument("--schedule", action="append", default=[], help="a window like 08:00-18:00=2 (repeatable)")
    args = parser.parse_args()
    trace = power_trace.read(args.trace)
    config = PolicyConfig(
        latency_target_s=args.latency_target_s,
        slots_per_node=args.slots,
        idle_before_sleep_s=args.idle_s,
        schedule=tuple(Window.parse(w) for w in args.schedule),
    )
    sim = dict(
        workers=args.workers,
        slots=args.slots,
        service_s=args.service_s,
        wake_s=args.wake_s,
        sleep_s=args.sleep_s,
        standby=args.standby,
        drop_after_s=args.drop_after_s,
    )
    base = simulate(trace, None, **sim)
    managed = simulate(trace, config, **sim)
    nodes = args.workers + 1
    print(
        f"trace {args.trace.name}: {sum(trace)} requests in a day, peak {max(trace)}/min; {nodes} nodes x "
        f"{args.slots} slots, service ~{args.service_s:g}s, wake {args.wake_s:g}s, sleep {args.sleep_s:g}s, "
        f"latency target {args.latency_target_s:g}s"
    )
    print(
        f"{'':14}{'energy (node-h)':>16}{'waited > target':>17}{'dropped':>9}{'wakes':>7}{'sleeps':>8}{'p99 wait':>10}"
    )
    rows = []
    for name, r in (("always-on", base), ("power agent", managed)):
        over = sum(1 for w in r.waits if w > args.latency_target_s)
        share = over / max(r.requests, 1)
        p99 = sorted(r.waits)[int(0.99 * (len(r.waits) - 1))] if r.waits else 0.0
        rows.append((r, over, share))
        print(f"{name:14}{r.energy:16.1f}{over:>9} ({share:5.2%}){r.dropped:>9}{r.wakes:>7}{r.sleeps:>8}{p99:>9.1f}s")
    saved = 1 - managed.energy / base.energy
    _, over, share = rows[1]
    goals = [
        (f"energy {saved:.1%} below always-on (goal >= 40%)", saved >= 0.40),
        (f"{managed.dropped} requests dropped (goal 0)", managed.dropped == 0),
        (f"{share:.2%} of requests waited over {args.latency_target_s:g}s (goal <= 1%)", share <= 0.01),
    ]
    for text, met in goals:
        print(f"  {'met' if met else 'NOT MET':8}{text}")
    print("all goals met" if all(m for _, m in goals) else "some goals not met")


if __name__ == "__main__":
    main()
