"""ansible against localhost (ansible_connection=local) through ansible-runner: every call waits for a person;
check mode changes nothing, a real run changes the file; the inventory is the configured one, never the workspace's."""

from __future__ import annotations

import asyncio
import sys

from fleetmind.tools.approvals import ApprovalBroker
from fleetmind.tools.base import ToolContext
from fleetmind.tools.builtin.ansible import ansible as ansible_tool

from .conftest import MakeRunner, approve_next


def inventory(context: ToolContext) -> None:
    """The configured inventory, beside (not inside) the workspace."""
    path = context.workspace.parent / "hosts.ini"
    path.write_text(f"[nodes]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    context.ansible_inventory = path


async def test_check_mode_then_a_real_run(make_runner: MakeRunner, context: ToolContext) -> None:
    broker = ApprovalBroker(timeout_s=60)
    runner = make_runner(approvals=broker)
    target = context.workspace / "touched.txt"
    inventory(context)
    args = {"hosts": "nodes", "module": "ansible.builtin.file", "module_args": {"path": str(target), "state": "touch"}}
    checked_outcome, _ = await asyncio.gather(runner.run("ansible", args, requester="agent"), approve_next(broker))
    assert checked_outcome.status == "ok", checked_outcome.error
    checked = checked_outcome.output
    assert checked["check"] is True and checked["status"] == "successful"
    assert checked["summary"]["ok"] == 1 and checked["summary"]["changed"] == 1
    assert checked["results"][0]["host"] == "localhost"
    assert not target.exists() and len(broker.recent()) == 1
    real, _ = await asyncio.gather(
        runner.run("ansible", {**args, "check": False}, requester="agent"), approve_next(broker)
    )
    assert real.status == "ok" and real.approval is not None and real.output["check"] is False
    assert target.exists()
    stat = {**args, "module": "ansible.builtin.stat", "module_args": "path=/definitely/not/here"}
    failed_outcome, _ = await asyncio.gather(runner.run("ansible", stat, requester="agent"), approve_next(broker))
    failed = failed_outcome.output
    assert failed["summary"]["ok"] == 1 and failed["results"][0]["changed"] is False


def test_every_call_needs_approval() -> None:
    for args in ({"module": "ansible.builtin.ping"}, {"module": "ping", "check": False}, {"playbook": "site.yml"}):
        assert ansible_tool.call_risk(args) == "approval"


async def test_missing_inventory_is_reported(make_runner: MakeRunner) -> None:
    broker = ApprovalBroker(timeout_s=60)
    outcome, _ = await asyncio.gather(
        make_runner(approvals=broker).run("ansible", {"module": "ping"}, requester="t"), approve_next(broker)
    )
    assert outcome.status == "error" and "inventory" in (outcome.error or "")
