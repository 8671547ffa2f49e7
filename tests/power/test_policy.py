"""The power policy's rules, one by one (pure: no clock, no sockets)."""

from __future__ import annotations

import pytest

from fleetmind.power.policy import NodeView, Observation, PolicyConfig, Window, decide

CFG = PolicyConfig(latency_target_s=10, slots_per_node=4, idle_before_sleep_s=600, cooldown_s=300)


def obs(nodes: list[NodeView], *, queue: int = 0, p95: float | None = None, day_s: float = 3 * 3600) -> Observation:
    return Observation(now_s=10_000, day_s=day_s, queue_depth=queue, p95_latency_s=p95, nodes=nodes)


def actions(cfg: PolicyConfig, o: Observation) -> list[tuple[str, str]]:
    return [(d.action, d.node) for d in decide(cfg, o)]


CONTROL = NodeView("control", "awake", control=True, idle_s=10_000)


def test_a_deep_queue_wakes_the_best_class_first() -> None:
    nodes = [CONTROL, NodeView("core2", "asleep", rank=4), NodeView("desktop", "asleep", rank=0)]
    # 5 requests want ceil(5 / (4 * 0.6)) = 3 nodes: both sleepers wake, the better class first
    assert actions(CFG, obs(nodes, queue=5)) == [("wake", "desktop"), ("wake", "core2")]
    assert actions(CFG, obs(nodes, queue=3)) == [("wake", "desktop")]
    assert actions(CFG, obs(nodes, queue=2)) == []


def test_p95_over_target_asks_for_one_more_node() -> None:
    nodes = [CONTROL, NodeView("w1", "asleep"), NodeView("w2", "asleep")]
    assert actions(CFG, obs(nodes, queue=1, p95=30)) == [("wake", "w1")]
    assert actions(CFG, obs(nodes, queue=1, p95=5)) == []


def test_a_draining_node_is_taken_back_before_a_sleeping_one_is_woken() -> None:
    nodes = [CONTROL, NodeView("w1", "draining"), NodeView("w2", "asleep")]
    assert actions(CFG, obs(nodes, queue=3)) == [("undrain", "w1")]


def test_waking_nodes_count_as_capacity() -> None:
    nodes = [CONTROL, NodeView("w1", "waking"), NodeView("w2", "asleep")]
    assert actions(CFG, obs(nodes, queue=3)) == []


def test_idle_workers_drain_one_at_a_time_and_never_the_control_node() -> None:
    nodes = [CONTROL, NodeView("w1", "awake", idle_s=700), NodeView("w2", "awake", idle_s=900)]
    assert actions(CFG, obs(nodes)) == [("drain", "w2")]
    only_control = [CONTROL, NodeView("w1", "awake", idle_s=100)]
    assert actions(CFG, obs(only_control)) == []


def test_no_drain_while_the_rest_could_not_carry_the_load_or_right_after_a_wake() -> None:
    nodes = [CONTROL, NodeView("w1", "awake", idle_s=700)]
    assert actions(CFG, obs(nodes, queue=2)) == []  # one node at 30% of 4 slots holds 1.2 requests
    recent = Observation(now_s=1000, day_s=0, queue_depth=0, p95_latency_s=None, nodes=nodes, last_wake_s=900)
    assert actions(CFG, recent) == []


def test_a_drained_node_sleeps_only_without_work() -> None:
    assert actions(CFG, obs([CONTROL, NodeView("w1", "draining", work=2)])) == []
    assert actions(CFG, obs([CONTROL, NodeView("w1", "draining", work=0)])) == [("sleep", "w1")]
    # even a draining control node (drained by hand) is never put to sleep
    assert actions(CFG, obs([NodeView("c", "draining", control=True), NodeView("w", "awake")])) == []


def test_the_schedule_and_min_awake_set_a_floor() -> None:
    cfg = PolicyConfig(schedule=(Window.parse("08:00-18:00=3"),), idle_before_sleep_s=0)
    nodes = [CONTROL, NodeView("w1", "awake", idle_s=10), NodeView("w2", "asleep"), NodeView("w3", "asleep")]
    assert actions(cfg, obs(nodes, day_s=9 * 3600)) == [("wake", "w2")]
    assert actions(cfg, obs(nodes, day_s=20 * 3600)) == [("drain", "w1")]
    night = PolicyConfig(schedule=(Window.parse("22:00-06:00=2"),))
    assert night.floor(23 * 3600) == 2 and night.floor(3 * 3600) == 2 and night.floor(12 * 3600) == 1


def test_a_node_without_a_mac_is_not_woken() -> None:
    nodes = [CONTROL, NodeView("nomac", "asleep", wakeable=False), NodeView("w", "asleep")]
    assert actions(CFG, obs(nodes, queue=3)) == [("wake", "w")]


@pytest.mark.parametrize("text", ["8-18", "08:00-18:00=x", "25:00-26:00=1", "08:00=2"])
def test_bad_schedule_windows_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="schedule window"):
        Window.parse(text)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="min_awake"):
        PolicyConfig(min_awake=0)
    with pytest.raises(ValueError, match="low_water"):
        PolicyConfig(low_water=0.7, high_water=0.6)
