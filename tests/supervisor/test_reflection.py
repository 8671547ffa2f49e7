"""The LLM's decision (a real llama-server, grammar-constrained JSON), refusal of an off-allowlist action,
approval through the broker Mission Control decides on (a denial is honoured), and the guard rails."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fleetmind.supervisor import ActionRefused
from fleetmind.supervisor.actions import LLM_ACTIONS, decision_schema, parse_decision
from fleetmind.supervisor.approvals import BrokerApprovals
from fleetmind.supervisor.audit import read_audit
from fleetmind.supervisor.cases import load_cases
from fleetmind.supervisor.detect import Fault
from fleetmind.supervisor.guard import Guard
from fleetmind.supervisor.reflect import Reflector
from fleetmind.tools.approvals import ApprovalBroker
from tests.cluster.conftest import RunningCluster, wait_for
from tests.supervisor import faults
from tests.supervisor.conftest import make_supervisor, tick_until


def test_parse_decision_refuses_what_is_off_the_allowlist() -> None:
    assert parse_decision('{"action": "restart", "reason": "x"}', decided_by="llm").action == "restart"
    for bad in ('{"action": "delete_job"}', '{"action": "restart", "command": "rm -rf /"}', "[]", "not json"):
        with pytest.raises(ActionRefused):
            parse_decision(bad, decided_by="llm")
    assert decision_schema()["properties"]["action"]["enum"] == list(LLM_ACTIONS)


@pytest.mark.slow
def test_llm_answers_within_the_allowlist(packaged_llama_server_url: str) -> None:
    # the packaged model: the tiny random test model cannot follow a grammar (llama-server refuses the sampler)
    reflector = Reflector(packaged_llama_server_url)
    answer = reflector.ask({"job": "x", "fault": {"kind": "crash_loop", "summary": "exited with code 3"}})
    decision = parse_decision(answer, decided_by="llm")
    assert decision.action in LLM_ACTIONS


def test_an_llm_that_refuses_the_request_leaves_the_failure_unclassified(llama_server_url: str) -> None:
    decision = Reflector(llama_server_url).decide({"job": "x"})  # the tiny model cannot take the grammar: HTTP 400
    assert (decision.action, decision.decided_by) == ("error", "llm")
    assert "400" in decision.reason


@pytest.mark.slow
def test_an_out_of_allowlist_llm_action_is_refused_and_audited(
    cluster: RunningCluster, tmp_path: Path, packaged_llama_server_url: str
) -> None:
    # A variant whose schema makes the (real) LLM answer an action the supervisor does not allow.
    hostile = decision_schema(("delete_job",))
    state = tmp_path / "state"
    sup = make_supervisor(cluster, state, reflector=Reflector(packaged_llama_server_url, schema=hostile))
    cluster.client.register_job(faults.crash_loop(tmp_path))
    entry = tick_until(sup, "crashloop")
    audit = list(read_audit(state))
    assert audit[0]["outcome"] == "refused" and audit[0]["decided_by"] == "llm"
    assert "delete_job" in audit[0]["refused"]
    assert (entry["action"], entry["outcome"]) == ("error", "escalated")
    cases = load_cases(state)
    assert [c.expected for c in cases] == ["heal"]
    assert cases[0].diagnostics["fault"]["kind"] == "crash_loop"
    assert cluster.client.job("crashloop")["Version"] == 0  # nothing was applied


def test_a_risky_action_waits_for_approval_and_a_denial_is_honoured(cluster: RunningCluster, tmp_path: Path) -> None:
    broker = ApprovalBroker(timeout_s=60)
    gate = BrokerApprovals(broker, cluster.loop, timeout_s=60)
    # more memory than the supervisor may grant alone: high risk
    sup = make_supervisor(cluster, tmp_path / "state", approvals=gate, max_memory_mb=100)

    def operator() -> None:
        pending = wait_for(broker.pending, what="the supervisor's approval request")
        assert pending[0].tool == "supervisor.increase_memory" and pending[0].risk == "high"
        broker.decide(pending[0].id, approve=False, by="operator", by_key="key-operator", note="not now")

    person = threading.Thread(target=operator)
    person.start()
    cluster.client.register_job(faults.oom(tmp_path))
    entry = tick_until(sup, "oom")
    person.join(30)
    assert (entry["action"], entry["outcome"]) == ("increase_memory", "denied")
    assert entry["approval"]["by"] == "operator"
    assert cluster.client.job("oom")["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMaxMB"] == 80
    assert sup.tick() == []  # the denial holds: no retry of the same failure


def _fault(alloc: str, version: int = 0) -> Fault:
    return Fault("j", alloc, "t", "crash_loop", "x", version)


def test_guard_cooldown_budget_once_and_storm() -> None:
    now = [0.0]
    guard = Guard(cooldown_s=10, budget=2, backoff=2, storm_window_s=60, clock=lambda: now[0])
    assert guard.admit(_fault("a"))[0] == "heal"
    assert guard.admit(_fault("a"))[0] == "skip"  # the same failure is diagnosed once
    guard.acted("j")
    now[0] = 5
    assert guard.admit(_fault("b"))[0] == "skip"  # cooldown
    now[0] = 11
    assert guard.admit(_fault("b"))[0] == "heal"
    guard.acted("j")
    now[0] = 25
    assert guard.admit(_fault("c"))[0] == "skip"  # backoff: 20 s after the second attempt
    now[0] = 32
    assert guard.admit(_fault("c")) == ("escalate", "attempt budget of 2 spent")
    storm = Guard(cooldown_s=0, storm_window_s=60, clock=lambda: now[0])
    storm.acted("j")
    storm.healed("j")
    verdict, why = storm.admit(_fault("d"))
    assert verdict == "escalate" and "no storm" in why and storm.storms_prevented == 1
    storm.escalated("j", 0)
    assert storm.admit(_fault("e"))[0] == "skip"
    assert storm.admit(_fault("f", version=1))[0] != "skip"  # a person changed the job


@pytest.mark.slow
def test_crash_loop_goes_to_the_packaged_llm(
    cluster: RunningCluster, tmp_path: Path, packaged_llama_server_url: str
) -> None:
    state = tmp_path / "state"
    sup = make_supervisor(cluster, state, reflector=Reflector(packaged_llama_server_url))
    cluster.client.register_job(faults.crash_loop(tmp_path))
    entry = tick_until(sup, "crashloop", timeout=120)
    assert entry["decided_by"] == "llm" and entry["action"] in LLM_ACTIONS
    assert "connection refused by dependency" in str(entry["diagnosis"])
    if entry["action"] == "restart":
        assert entry["outcome"] == "healed"  # the dependency is up by the fourth start
    elif entry["action"] in ("error", "mark_failed_and_alert"):
        assert entry["outcome"] == "escalated" and load_cases(state)
    else:
        assert entry["outcome"] in ("healed", "not_healed", "escalated")


def test_the_model_is_the_llama_server_one_behind_a_launcher() -> None:
    from fleetmind.supervisor.diagnose import model_path

    launcher = ["-m", "fleetmind.cluster.expert_launcher", "--min-workers", "0", "--", "/bin/llama-server"]
    assert model_path([*launcher, "-m", "/m/a.gguf", "--port", "1"]) == "/m/a.gguf"
    assert model_path(launcher) is None
    assert model_path(["-m", "/m/b.gguf"]) == "/m/b.gguf"


def test_the_llm_reads_a_compact_view_of_the_diagnosis() -> None:
    from fleetmind.supervisor.reflect import llm_view

    diagnosis = {
        "job": "web",
        "fault": {"kind": "crash_loop", "summary": "exited with code 3", "alloc": "a-uuid", "signature": "x"},
        "allocation": {"id": "a-uuid", "restarts": 1},
        "events": [
            {"type": "Started", "message": "Task started by client"},
            {"type": "Terminated", "exit_code": 3, "signal": 0, "cause": "exited with code 3", "oom_killed": False},
        ],
        "log_tail": "x" * 1000 + "connection refused",
        "versions": {"current": 0, "history": [0]},
        "meta": {},
    }
    view = llm_view(diagnosis)
    assert view["fault"] == {"kind": "crash_loop", "summary": "exited with code 3"}
    assert view["events"] == [{"type": "Terminated", "exit_code": 3, "cause": "exited with code 3"}]  # no signal 0
    assert view["log_tail"].endswith("connection refused") and len(view["log_tail"]) == 400
    assert "a-uuid" not in str(view) and "meta" not in view
