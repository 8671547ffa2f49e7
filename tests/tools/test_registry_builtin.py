"""The built-ins: 25+ tools through the entry-point group, valid OpenAI tool specs, and a test for each one."""

from __future__ import annotations

import re
from pathlib import Path

from fleetmind.tools.registry import discover
from fleetmind.tools.runner import ToolRunner

HERE = Path(__file__).parent


def test_builtins_come_from_entry_points_with_valid_specs(runner: ToolRunner) -> None:
    specs = runner.specs()
    names = [s.name for s in specs]
    assert len(specs) >= 25 and names == sorted(names) == discover().names()
    required = {
        "ansible",
        "code_runner",
        "vision",
        "planner",
        "orchestrator",
        "swarm",
        "memory",
        "cluster_status",
        "job_logs",
        "restart_job",
        "scale_job",
        "node_facts",
        "wake_node",
        "http_get",
        "file_read",
        "file_write",
        "shell",
        "calculator",
        "clock",
    }
    assert required <= set(names)
    risks = {s.name: s.risk for s in specs}
    assert risks["shell"] == risks["restart_job"] == risks["scale_job"] == "approval"
    tools = runner.openai_tools()
    assert len(tools) == len(specs)
    for t in tools:
        assert t["type"] == "function" and t["function"]["parameters"]["type"] == "object"
        assert t["function"]["description"]
    assert [t["function"]["name"] for t in runner.openai_tools(["clock", "shell"])] == ["clock", "shell"]


def test_every_builtin_tool_has_a_test(runner: ToolRunner) -> None:
    text = "\n".join(p.read_text() for p in HERE.glob("test_*.py") if p.name != Path(__file__).name)
    called = set(re.findall(r'(?:run_ok\(\s*\w+,\s*|\.run\(\s*)"(\w+)"', text))
    missing = {s.name for s in runner.specs()} - called
    assert not missing, f"built-in tools without a test that runs them: {sorted(missing)}"
