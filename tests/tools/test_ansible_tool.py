"""ansible against localhost (ansible_connection=local) through ansible-runner: check mode changes nothing and
runs without a person; a real run needs approval and changes the file; a playbook always needs approval."""

from __future__ import annotations

import asyncio
import sys

from fleetmind.tools.approvals import ApprovalBroker
from fleetmind.tools.base import ToolContext
from fleetmind.tools.builtin.ansible import ansible_risk

from .conftest import MakeRunner, approve_next, run_ok


def inventory(context: ToolContext) -> str:
    (context.workspace / "hosts.ini").write_text(
        f"[nodes]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    return "hosts.ini"


async def test_check_mode_then_a_real_run(make_runner: MakeRunner, context: ToolContext) -> None:
    broker = ApprovalBroker(timeout_s=60)
    runner = make_runner(approvals=broker)
    target = context.workspace / "touched.txt"
    args = {
        "hosts": "nodes",
        "inventory": inventory(context),
        "module": "ansible.builtin.file",
        "module_args": {"path": str(target), "state": "touch"},
    }
    checked = await run_ok(runner, "ansible", args)
    assert checked["check"] is True and checked["status"] == "successful"
    assert checked["summary"]["ok"] == 1 and checked["summary"]["changed"] == 1
    assert checked["results"][0]["host"] == "localhost"
    assert not target.exists() and broker.recent() == []
    real, _ = await asyncio.gather(
        runner.run("ansible", {**args, "check": False}, requester="agent"), approve_next(broker)
    )
    assert real.status == "ok" and real.approval is not None and real.output["check"] is False
    assert target.exists()
    failed = await run_ok(
        runner, "ansible", {**args, "module": "ansible.builtin.stat", "module_args": "path=/definitely/not/here"}
    )
    assert failed["summary"]["ok"] == 1 and failed["results"][0]["changed"] is False


def test_risk_depends_on_the_call() -> None:
    assert ansible_risk({"module": "ansible.builtin.ping"}) == "safe"
    assert ansible_risk({"module": "ping", "check": False}) == "approval"
    assert ansible_risk({"module": "ansible.builtin.raw"}) == "approval"
    assert ansible_risk({"playbook": "site.yml"}) == "approval"


async def test_missing_inventory_is_reported(make_runner: MakeRunner) -> None:
    outcome = await make_runner().run("ansible", {"module": "ping"}, requester="t")
    assert outcome.status == "error" and "inventory" in (outcome.error or "")
