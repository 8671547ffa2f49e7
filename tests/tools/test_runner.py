"""The gate: argument parsing and validation before the tool runs, policy, approvals, timeouts, audit, plugins."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from fleetmind.tools.approvals import ApprovalBroker
from fleetmind.tools.base import Tool, ToolCall, tool
from fleetmind.tools.errors import ToolRefusedError, ToolRegistrationError
from fleetmind.tools.policy import Policy
from fleetmind.tools.registry import ToolRegistry, discover, load_plugin_dir
from fleetmind.tools.runner import ToolRunner, build_runner
from fleetmind.tools.settings import ToolsSettings, get_tools_settings

from .conftest import MakeRunner, approve_next

CALLS: list[dict[str, Any]] = []


@tool(
    "add",
    "Add two integers.",
    {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]},
)
def add(call: ToolCall) -> int:
    CALLS.append(call.args)
    return int(call.args["a"]) + int(call.args["b"])


@tool("risky", "Needs a person.", risk="approval")
def risky(call: ToolCall) -> str:
    CALLS.append({"risky": call.requester})
    return "did it"


@tool("slow", "Sleeps too long.", timeout_s=0.1)
async def slow(call: ToolCall) -> str:
    await asyncio.sleep(10)
    return "never"


@tool("picky", "Refuses everything.")
def picky(call: ToolCall) -> str:
    raise ToolRefusedError("not today")


@tool("buggy", "Has a bug.")
def buggy(call: ToolCall) -> str:
    return str(1 / 0)


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()


async def test_arguments_are_validated_before_the_tool_runs(make_runner: MakeRunner) -> None:
    runner = make_runner(add)
    assert (await runner.run("add", '{"a": 2, "b": 3}', requester="m")).output == 5
    bad = await runner.run("add", {"a": "two", "c": 1}, requester="m")
    assert bad.status == "invalid_arguments" and CALLS == [{"a": 2, "b": 3}]
    message = bad.to_model_message()
    assert "'b' is a required property" in message and "'two' is not of type 'integer'" in message
    assert "Additional properties" in message and "call it again" in message
    for junk in ('{"a": 1,', "[1, 2]"):
        outcome = await runner.run("add", junk, requester="m")
        assert outcome.status == "invalid_arguments" and outcome.output is None
    assert len(CALLS) == 1
    assert (await runner.run("nope", {}, requester="m")).status == "unknown_tool"


async def test_approval_gate_approve_deny_expire(make_runner: MakeRunner) -> None:
    broker = ApprovalBroker(timeout_s=5)
    runner = make_runner(risky, approvals=broker)
    approved, _ = await asyncio.gather(runner.run("risky", {}, requester="agent:c1"), approve_next(broker))
    assert approved.status == "ok" and approved.approval is not None and approved.approval.by == "tester"
    denied, _ = await asyncio.gather(runner.run("risky", {}, requester="agent"), approve_next(broker, approve=False))
    assert denied.status == "denied" and "denied" in denied.to_model_message()
    runner.approvals = ApprovalBroker(timeout_s=0.05)
    assert (await runner.run("risky", {}, requester="agent")).status == "expired"
    assert CALLS == [{"risky": "agent:c1"}]


async def test_policy_refuses_and_overrides(make_runner: MakeRunner) -> None:
    runner = make_runner(add, risky, policy=Policy(overrides={"add": "refuse", "risky": "run"}))
    assert (await runner.run("add", {"a": 1, "b": 1}, requester="m")).status == "refused"
    assert (await runner.run("risky", {}, requester="m")).output == "did it"
    assert [t["function"]["name"] for t in runner.openai_tools()] == ["risky"]
    with pytest.raises(ValueError, match="action"):
        Policy(by_risk={"safe": "maybe"})  # type: ignore[dict-item]


async def test_errors_timeouts_and_refusals_from_tools(make_runner: MakeRunner) -> None:
    runner = make_runner(slow, picky, buggy)
    assert (await runner.run("slow", {}, requester="m")).status == "timeout"
    refused = await runner.run("picky", {}, requester="m")
    assert refused.status == "refused" and "not today" in refused.to_model_message()
    error = await runner.run("buggy", {}, requester="m")
    assert error.status == "error" and "ZeroDivisionError" in (error.error or "")


async def test_every_call_is_audited_and_survives_a_restart(make_runner: MakeRunner, tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    runner = make_runner(add, events=events)
    await runner.run("add", {"a": 1, "b": 2}, requester="alice")
    await runner.run("add", "{bad", requester="bob")
    path = tmp_path / "audit" / "tools.jsonl"
    with path.open("ab") as fh:
        fh.write(b'{"call_id": "torn')  # what a crash mid-write leaves
    again = make_runner(add)
    await again.run("add", {"a": 5, "b": 5}, requester="carol")
    records = again.audit.read()
    assert [(r["requester"], r["status"]) for r in records] == [
        ("alice", "ok"),
        ("bob", "invalid_arguments"),
        ("carol", "ok"),
    ]
    assert records[0]["arguments"] == {"a": 1, "b": 2} and records[0]["output"] == 3
    assert records[0]["duration_ms"] >= 0 and records[0]["action"] == "run"
    assert [k for k, _ in events] == ["tool_call", "tool_call"] and events[0][1]["status"] == "ok"
    assert all(json.loads(line) for line in path.read_text().splitlines() if "torn" not in line)


def test_plugins_from_a_directory_and_bad_plugins(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "greet.py").write_text(
        textwrap.dedent("""
        from fleetmind.tools.base import tool

        @tool("greet", "Say hello.", {"type": "object", "properties": {"name": {"type": "string"}}})
        def greet(call):
            return "hello " + call.args.get("name", "world")
    """)
    )
    [greet] = load_plugin_dir(plugins)
    assert greet.name == "greet"
    registry = discover(plugins)
    assert "greet" in registry and "calculator" in registry
    with pytest.raises(ToolRegistrationError, match="two tools"):
        ToolRegistry([greet, Tool("greet", "x", {"type": "object"}, lambda c: None)])
    with pytest.raises(ToolRegistrationError, match="risk"):
        Tool("bad", "x", {"type": "object"}, lambda c: None, risk="yolo")
    with pytest.raises(ToolRegistrationError, match="schema"):
        Tool("bad", "x", {"type": "object", "properties": {"a": {"type": 5}}}, lambda c: None)


async def test_plugin_tool_runs_through_the_gate(make_runner: MakeRunner, tmp_path: Path) -> None:
    plugins = tmp_path / "p"
    plugins.mkdir()
    (plugins / "twice.py").write_text(
        "from fleetmind.tools.base import tool\n"
        "@tool('twice', 'Double it.', {'type': 'object', 'properties': {'n': {'type': 'number'}}, 'required': ['n']})\n"
        "def twice(call):\n    return call.args['n'] * 2\n"
    )
    runner: ToolRunner = make_runner(*load_plugin_dir(plugins))
    assert (await runner.run("twice", {"n": 21}, requester="x")).output == 42


async def test_build_runner_reads_the_plugin_dir_setting_and_cancelled_calls_are_audited(
    tmp_path: Path,
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "nap.py").write_text(
        "import asyncio\nfrom fleetmind.tools.base import tool\n"
        "@tool('nap', 'Sleep a while.')\nasync def nap(call):\n    await asyncio.sleep(30)\n"
    )
    runner = build_runner(state_dir=tmp_path, settings=ToolsSettings(plugin_dir=plugins, workspace=tmp_path / "ws"))
    assert "nap" in runner.registry and "calculator" in runner.registry
    assert runner.context.workspace == (tmp_path / "ws").resolve() and runner.context.http_allowlist == ()
    task = asyncio.create_task(runner.run("nap", {}, requester="x"))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runner.audit.read()[-1]["status"] == "cancelled"
    await runner.run("calculator", {"expression": "1+" + "1+" * 5000 + "1"}, requester="x")
    assert isinstance(runner.audit.read()[-1]["arguments"], str)  # a long argument is kept as a bounded preview


def test_settings_from_yaml_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "tools.yaml"
    config.write_text("policy:\n  safe: approve\noverrides:\n  clock: run\nhttp_allowlist: [example.org]\n")
    monkeypatch.setenv("FLEETMIND_TOOLS_HTTP_ALLOWLIST", '["10.0.0.1"]')
    settings = get_tools_settings(config)
    assert settings.policy["safe"] == "approve" and settings.overrides == {"clock": "run"}
    assert settings.http_allowlist == ["10.0.0.1"]  # the environment wins over the file
    monkeypatch.setenv("FLEETMIND_TOOLS_CONFIG", str(config))
    assert ToolsSettings().overrides == {"clock": "run"}
    policy = Policy.from_settings(settings)
    assert policy.by_risk["safe"] == "approve" and policy.by_risk["forbidden"] == "refuse"
