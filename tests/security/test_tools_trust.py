"""Tools cannot be talked into more than their rating: each tools attack of issue 14 replayed, and the legit path.

- ansible: Jinja in any argument (``lookup('pipe', ...)``, ``lookup('file', '/etc/shadow')``) and the modules that
  evaluate bare expressions are refused before anyone is asked and before Ansible starts; every call, check mode
  included, waits for a person; the inventory never comes from the workspace.
- code_runner: the agent's environment is not readable from the sandbox, ``/proc/1/environ`` included.
- a call is audited before it runs; a lone surrogate is an invalid argument (the tool never runs), a 400 from
  Mission Control, and cannot break ``GET /api/events``; ``/api/tools/runs`` survives outputs over 16 KB.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.settings import AgentSettings
from fleetmind.apps.agent_process import create_app, detach_logging
from fleetmind.config import Settings
from fleetmind.security import KeyStore
from fleetmind.tools.approvals import ApprovalBroker
from fleetmind.tools.base import ToolCall, ToolContext, tool
from fleetmind.tools.builtin.ansible import ansible
from fleetmind.tools.builtin.code import code_runner
from fleetmind.tools.registry import ToolRegistry
from fleetmind.tools.runner import ToolRunner, build_runner
from fleetmind.tools.settings import ToolsSettings
from tests.tools.conftest import approve_next

ran: list[dict[str, Any]] = []


@tool("echo", "Echo a text.", {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})
def echo(call: ToolCall) -> dict[str, Any]:
    ran.append(call.args)
    return {"echo": call.args["text"]}


@tool("big", "A large output.", {"type": "object", "properties": {"n": {"type": "integer"}}})
def big(call: ToolCall) -> str:
    return "x" * int(call.args.get("n", 40_000))


@tool("peek_audit", "Read the audit log from inside a running tool.")
def peek_audit(call: ToolCall) -> list[dict[str, Any]]:
    lines = (call.context.state_dir / "audit" / "tools.jsonl").read_text().splitlines()  # type: ignore[operator]
    return [json.loads(line) for line in lines]


@pytest.fixture
def context(tmp_path: Path) -> ToolContext:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    return ToolContext(workspace=workspace.resolve(), state_dir=tmp_path)


def make_runner(tmp_path: Path, context: ToolContext, *tools: Any, timeout_s: float = 60.0) -> ToolRunner:
    return build_runner(
        state_dir=tmp_path,
        approvals=ApprovalBroker(timeout_s=timeout_s),
        context=context,
        settings=ToolsSettings(),
        registry=ToolRegistry(list(tools)),
    )


def local_inventory(path: Path) -> Path:
    path.write_text(f"[nodes]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    return path


# -- ansible ----------------------------------------------------------------------------------------------


def attacks(marker: Path) -> list[dict[str, Any]]:
    return [
        {"module": "ansible.builtin.debug", "module_args": {"msg": f"{{{{ lookup('pipe', 'id > {marker}') }}}}"}},
        {"module": "debug", "module_args": "msg={{ lookup('file', '/etc/shadow') }}"},
        {"module": "copy", "module_args": {"content": "{{ lookup('file', '/etc/shadow') }}", "dest": str(marker)}},
        {"module": "ping", "hosts": f"{{{{ lookup('pipe', 'touch {marker}') }}}}"},
        {"module": "ping", "module_args": {f"{{% set x = lookup('pipe', 'touch {marker}') %}}": "1"}},
        {"module": "ping", "module_args": "data={# comment #}"},
        {"module": "debug", "module_args": f"var=lookup('pipe','touch {marker}')"},
        {"module": "debug", "module_args": {"var": "lookup('file','/etc/shadow')"}},
        {"module": "ansible.builtin.assert", "module_args": {"that": f"lookup('pipe','touch {marker}')"}},
    ]


async def test_ansible_lookups_never_run(tmp_path: Path, context: ToolContext) -> None:
    marker = tmp_path / "pwned"
    context.ansible_inventory = local_inventory(tmp_path / "hosts.ini")
    runner = make_runner(tmp_path, context, ansible)
    for args in attacks(marker):
        outcome = await runner.run("ansible", args, requester="agent")
        assert outcome.status == "invalid_arguments", (args, outcome.status, outcome.output)
        assert "root:" not in json.dumps(outcome.to_dict())
    assert runner.approvals.recent() == []  # refused before a person was even asked
    assert not marker.exists()


async def test_ansible_always_needs_a_person(tmp_path: Path, context: ToolContext) -> None:
    context.ansible_inventory = local_inventory(tmp_path / "hosts.ini")
    runner = make_runner(tmp_path, context, ansible, timeout_s=0.5)
    assert ansible.call_risk({"module": "ping"}) == "approval"
    outcome = await runner.run("ansible", {"module": "ping", "hosts": "nodes"}, requester="agent")
    assert outcome.status == "expired"  # check mode, a harmless module: still nobody's call but a person's
    # the legit path: a person approves, the module runs
    runner = make_runner(tmp_path, context, ansible)

    outcome, _ = await asyncio.gather(
        runner.run("ansible", {"module": "ansible.builtin.ping", "hosts": "nodes"}, requester="agent"),
        approve_next(runner.approvals, by="operator"),
    )
    assert outcome.status == "ok", outcome.error
    assert outcome.output["results"][0]["result"]["ping"] == "pong"


async def test_the_inventory_never_comes_from_the_workspace(tmp_path: Path, context: ToolContext) -> None:
    context.ansible_inventory = local_inventory(context.workspace / "hosts.ini")
    runner = make_runner(tmp_path, context, ansible)
    outcome = await runner.run("ansible", {"module": "ping", "inventory": "hosts.ini"}, requester="agent")
    assert outcome.status == "invalid_arguments"  # no such argument any more
    outcome, _ = await asyncio.gather(
        runner.run("ansible", {"module": "ping"}, requester="agent"), approve_next(runner.approvals)
    )
    assert outcome.status == "error" and "workspace" in (outcome.error or "")


# -- code_runner --------------------------------------------------------------------------------------------

READ_ENVIRONMENTS = """
import os
seen = [repr(dict(os.environ))]
for pid in os.listdir('/proc'):
    if pid.isdigit() or pid == 'self':
        try:
            seen.append(pid + ':' + open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace'))
        except OSError as exc:
            seen.append(pid + ': ' + type(exc).__name__)
print('\\n'.join(seen))
"""


async def test_code_runner_cannot_read_the_agents_environment(
    tmp_path: Path, context: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETMIND_TEST_SECRET", "canary-7d1f0e")
    runner = make_runner(tmp_path, context, code_runner)
    outcome = await runner.run("code_runner", {"code": READ_ENVIRONMENTS}, requester="agent")
    assert outcome.status == "ok", outcome.error
    stdout = outcome.output["stdout"]
    assert "1:" in stdout  # /proc/1 (bwrap) was looked at
    assert "canary-7d1f0e" not in stdout and "FLEETMIND_TEST_SECRET" not in stdout


# -- audit, surrogates, sizes ---------------------------------------------------------------------------------


async def test_a_call_is_audited_before_it_runs(tmp_path: Path, context: ToolContext) -> None:
    runner = make_runner(tmp_path, context, peek_audit)
    outcome = await runner.run("peek_audit", {}, requester="agent")
    assert outcome.status == "ok"
    (line,) = [r for r in outcome.output if r["call_id"] == outcome.call_id]
    assert line["status"] == "started" and line["requester"] == "agent"
    assert [r["status"] for r in runner.audit.read()] == ["ok"]  # one record per call once it ended


async def test_a_lone_surrogate_is_an_invalid_argument(tmp_path: Path, context: ToolContext) -> None:
    ran.clear()
    runner = make_runner(tmp_path, context, echo)
    for arguments in ('{"text": "\\ud800"}', {"text": "ok \udc00"}, {"text": "x", "\ud83d": 1}):
        outcome = await runner.run("echo", arguments, requester="agent")
        assert outcome.status == "invalid_arguments", outcome.status
        assert "Unicode" in (outcome.error or "")
    assert ran == []
    raw = (tmp_path / "audit" / "tools.jsonl").read_bytes()
    raw.decode("utf-8")  # every record was written, as valid UTF-8
    assert [r["status"] for r in runner.audit.read()] == ["invalid_arguments"] * 3


async def test_audit_entries_are_bounded(tmp_path: Path, context: ToolContext) -> None:
    runner = make_runner(tmp_path, context, echo, big)
    await runner.run("echo", {"text": "y" * 1_000_000}, requester="r" * 100_000)
    await runner.run("big", {"n": 1_000_000}, requester="agent")
    lines = (tmp_path / "audit" / "tools.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(len(line) < 40_000 for line in lines)
    assert sum("chars)" in line for line in lines) == 3  # the text and requester of both echo lines, big's output


@pytest.fixture
async def mission_control(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    store = KeyStore(tmp_path / "keys.json")
    key, _ = store.create("operator", scope="operator")
    runner = build_runner(
        state_dir=tmp_path / "tools",
        approvals=ApprovalBroker(timeout_s=30),
        registry=ToolRegistry([echo, big]),
        settings=ToolsSettings(workspace=tmp_path / "ws"),
    )
    runtime = AgentRuntime(settings=AgentSettings(experts="general=http://127.0.0.1:9"))
    app = create_app(Settings(state_dir=tmp_path), runtime, tools=runner)
    try:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as client:
            yield client, app
    finally:
        await app.state.tool_runs.aclose()
        detach_logging(app)


async def test_mission_control_refuses_surrogates_and_events_keep_flowing(
    mission_control: tuple[httpx.AsyncClient, Any],
) -> None:
    client, app = mission_control
    ran.clear()
    body = b'{"arguments": {"text": "\\ud800"}}'
    r = await client.post("/api/tools/echo/run", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_text"
    r = await client.post(
        "/api/events",
        content=b'{"kind": "x.test", "message": "bad \\udc00", "data": {"k": "\\ud800"}}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    # whatever reaches the hub some other way (a log line, a thread) cannot break the stream for everyone
    app.state.events.publish("x.test", "lone \ud800 surrogate", value="\udfff", nested={"k": ["\ud800"]})
    r = await client.get("/api/events")
    assert r.status_code == 200, r.text
    assert any(e["kind"] == "x.test" for e in r.json()["events"])
    await asyncio.sleep(0.1)
    assert ran == []


async def test_tool_runs_survive_outputs_over_16kb(mission_control: tuple[httpx.AsyncClient, Any]) -> None:
    client, _ = mission_control
    r = await client.post("/api/tools/big/run", json={"arguments": {"n": 40_000}})
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    for _ in range(200):
        run = (await client.get(f"/api/tools/runs/{run_id}")).json()
        if run["status"] != "running":
            break
        await asyncio.sleep(0.02)
    assert run["status"] == "ok"
    listing = await client.get("/api/tools/runs")
    assert listing.status_code == 200, listing.text
    (shown,) = [r for r in listing.json()["runs"] if r["id"] == run_id]
    assert isinstance(shown["output"], str) and shown["output"].endswith("chars)")
    assert len(shown["output"]) < 20_000
