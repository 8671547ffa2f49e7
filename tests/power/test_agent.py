"""The power agent end to end against a fake Nomad agent (three nodes; no Nomad can run here): it drains an idle
worker, sleeps it once drained and empty, wakes it by a real magic packet when demand comes back, sees it rejoin,
and never touches the control node. Every decision is an audit line and an event posted over HTTP in the shape
Mission Control's ``POST /api/events`` takes."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from fleetmind.mission_control.routes.events import PublishRequest
from fleetmind.power.agent import PowerAgent
from fleetmind.power.audit import Recorder
from fleetmind.power.settings import PowerSettings
from fleetmind.power.signals import Demand


class FakeNomad:
    """Nodes and allocations as Nomad's API reports them, and the drain calls the agent makes."""

    def __init__(self) -> None:
        ready = {"Status": "ready", "Drain": False, "SchedulingEligibility": "eligible"}
        self.nodes_ = {name: {"ID": f"id-{name}", "Name": name, **ready} for name in ("ctl", "w1")}
        self.allocs: dict[str, list[dict[str, Any]]] = {"id-ctl": [{"JobID": "pipecatapp", "ClientStatus": "running"}]}
        self.calls: list[tuple[str, str]] = []

    def nodes(self) -> list[dict[str, Any]]:
        return [dict(n) for n in self.nodes_.values()]

    def node_allocations(self, node_id: str) -> list[dict[str, Any]]:
        return self.allocs.get(node_id, [])

    def drain_node(self, node_id: str, *, deadline_s: float = 300.0) -> dict[str, Any]:
        self.calls.append(("drain", node_id))
        node = next(n for n in self.nodes_.values() if n["ID"] == node_id)
        node.update(Drain=True, SchedulingEligibility="ineligible")
        return {}

    def undrain_node(self, node_id: str) -> dict[str, Any]:
        self.calls.append(("undrain", node_id))
        return {}


def recording(ran: list[list[str]]) -> Callable[[list[str]], int]:
    """A sleep command runner that records the command instead of suspending this machine."""

    def run(argv: list[str]) -> int:
        ran.append(argv)
        return 0

    return run


@pytest.fixture
def events() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    class Intake(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            PublishRequest.model_validate(body)  # Mission Control's own model of an event
            assert self.headers["Authorization"] == "Bearer fm-operator-key"
            got.append(body)
            self.send_response(201)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Intake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/events", got
    finally:
        server.shutdown()
        server.server_close()


def test_drain_sleep_wake_rejoin(tmp_path: Path, events: tuple[str, list[dict[str, Any]]]) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "all:\n  children:\n    control:\n      hosts:\n        ctl:\n          ansible_host: !unsafe '10.0.0.1'\n"
        "          fleetmind_mac: !unsafe '52:54:00:00:00:01'\n"
        "    worker:\n      hosts:\n        w1:\n          ansible_host: !unsafe '10.0.0.2'\n"
        "          fleetmind_mac: !unsafe '52:54:00:00:00:02'\n          power_wol_broadcast: 127.0.0.1\n"
    )
    url, got = events
    settings = PowerSettings(
        inventory=inventory,
        audit_log=tmp_path / "power" / "audit.jsonl",
        metrics_url="",
        events_url=url,
        events_key=SecretStr("fm-operator-key"),
        wol_port=receiver.getsockname()[1],
        idle_before_sleep_s=60,
        cooldown_s=0,
        sleep_command="sleep-node {node}",
    )
    nomad = FakeNomad()
    now = [1000.0]
    demand = [Demand(queue_depth=0, p95_latency_s=None, requests=0)]
    ran: list[list[str]] = []
    agent = PowerAgent(
        settings,
        nomad,
        Recorder(settings.audit_log, events_url=url, events_key="fm-operator-key"),
        metrics=lambda _now: demand[0],
        clock=lambda: now[0],
        runner=recording(ran),
    )

    assert agent.step() == []  # both just seen: nobody has been idle long enough
    now[0] += 120
    assert [(d.action, d.node) for d in agent.step()] == [("drain", "w1")]
    assert nomad.calls == [("drain", "id-w1")]
    now[0] += 10
    assert [(d.action, d.node) for d in agent.step()] == [("sleep", "w1")]
    assert ran == [["sleep-node", "w1"]]
    nomad.nodes_["w1"].update(Status="down", Drain=False, SchedulingEligibility="eligible")

    demand[0] = Demand(queue_depth=4, p95_latency_s=20.0, requests=40)
    now[0] += 10
    assert [(d.action, d.node) for d in agent.step()] == [("wake", "w1")]
    packet, _ = receiver.recvfrom(200)
    assert packet == b"\xff" * 6 + bytes.fromhex("525400000002") * 16
    now[0] += 10
    assert agent.step() == []  # waking: counted as capacity, not woken twice
    nomad.nodes_["w1"]["Status"] = "ready"
    now[0] += 10
    agent.step()
    receiver.close()

    lines = [json.loads(line) for line in settings.audit_log.read_text().splitlines()]
    kinds = [line["kind"] for line in lines]
    assert kinds == ["power.drain", "power.sleep", "power.wake", "power.rejoined"]
    assert all(line["event_delivered"] for line in lines)
    assert [e["kind"] for e in got] == kinds
    assert all(line["data"]["node"] == "w1" for line in lines)
    assert not any(c[1] == "id-ctl" for c in nomad.calls)


def test_a_node_holding_work_is_not_slept_even_when_drained(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "all:\n  children:\n    control:\n      hosts:\n        ctl: {}\n    worker:\n      hosts:\n        w1:\n"
        "          fleetmind_mac: '52:54:00:00:00:02'\n"
    )
    settings = PowerSettings(inventory=inventory, audit_log=tmp_path / "audit.jsonl", metrics_url="")
    nomad = FakeNomad()
    nomad.nodes_["w1"].update(Drain=True, SchedulingEligibility="ineligible")
    nomad.allocs["id-w1"] = [{"JobID": "llama-expert", "ClientStatus": "running"}]
    ran: list[list[str]] = []
    agent = PowerAgent(settings, nomad, Recorder(settings.audit_log), metrics=lambda _n: None, runner=recording(ran))
    assert agent.step() == []
    nomad.allocs["id-w1"] = [{"JobID": "llama-expert", "ClientStatus": "complete"}]
    assert [(d.action, d.node) for d in agent.step()] == [("sleep", "w1")]
    assert len(ran) == 1
