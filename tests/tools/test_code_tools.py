"""code_runner runs real Python in the sandbox; shell always waits for a person, whatever the policy says."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from fleetmind.tools.approvals import ApprovalBroker
from fleetmind.tools.base import ToolContext
from fleetmind.tools.policy import Policy
from fleetmind.tools.runner import ToolRunner

from .conftest import MakeRunner, approve_next, run_ok


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
async def test_code_runner_runs_python_with_stdin_and_files(runner: ToolRunner) -> None:
    code = (
        "import sys, json, statistics\n"
        "data = json.load(open('data.json'))\n"
        "print(statistics.mean(data), sys.stdin.read().upper())\n"
        "open('result.txt', 'w').write('done')\n"
    )
    out = await run_ok(runner, "code_runner", {"code": code, "stdin": "hi", "files": {"data.json": "[1, 2, 6]"}})
    assert out["stdout"] == "3 HI\n" and out["exit_code"] == 0
    assert out["files"] == ["data.json", "result.txt"]
    failing = await runner.run("code_runner", {"code": "print('partial')\nraise ValueError('boom')"}, requester="t")
    assert failing.status == "error"
    assert "ValueError: boom" in (failing.error or "") and "partial" in (failing.error or "")
    bad_name = await runner.run("code_runner", {"code": "pass", "files": {"../x": "y"}}, requester="t")
    assert bad_name.status == "error" and "plain name" in (bad_name.error or "")


async def test_shell_needs_approval_even_when_policy_says_run(make_runner: MakeRunner, context: ToolContext) -> None:
    broker = ApprovalBroker(timeout_s=5)
    runner = make_runner(
        approvals=broker, policy=Policy(by_risk={"safe": "run", "approval": "run"}, overrides={"shell": "run"})
    )
    ran, _ = await asyncio.gather(
        runner.run("shell", {"command": "echo hello > made.txt; cat made.txt"}, requester="agent"),
        approve_next(broker, by="ops"),
    )
    assert ran.status == "ok" and ran.output["stdout"] == "hello\n" and ran.approval and ran.approval.by == "ops"
    assert (context.workspace / "made.txt").read_text() == "hello\n"
    denied, _ = await asyncio.gather(
        runner.run("shell", {"command": "touch never.txt"}, requester="agent"),
        approve_next(broker, approve=False),
    )
    assert denied.status == "denied" and not (context.workspace / "never.txt").exists()
    refused = await make_runner(policy=Policy(overrides={"shell": "refuse"})).run(
        "shell", {"command": "touch never.txt"}, requester="agent"
    )
    assert refused.status == "refused" and not (context.workspace / "never.txt").exists()


async def test_shell_time_limit(make_runner: MakeRunner) -> None:
    broker = ApprovalBroker(timeout_s=5)
    runner = make_runner(approvals=broker)
    slow, _ = await asyncio.gather(
        runner.run("shell", {"command": "sleep 30", "timeout_s": 0.3}, requester="agent"), approve_next(broker)
    )
    assert slow.status == "error" and "killed" in (slow.error or "")
