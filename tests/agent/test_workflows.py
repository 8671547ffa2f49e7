"""The workflow engine: schema and registry checks with file and line, plugins, and custom workflows that run
in the real pipeline against a real llama-server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from agent_testkit import collect, direct_completion, make_request

from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.settings import AgentSettings
from fleetmind.agent.workflows import DEFAULT_WORKFLOW, WorkflowLoadError, resolve_workflow
from fleetmind.agent.workflows.loader import load_workflow
from fleetmind.agent.workflows.registry import default_registry


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(text)
    return path


def test_the_packaged_default_loop_loads() -> None:
    workflow = load_workflow(DEFAULT_WORKFLOW, default_registry())
    assert workflow.name == "default_agent_loop"
    assert [s.type.name for s in workflow.steps] == [
        "load_history",
        "recall_memory",
        "route",
        "call_tool",
        "call_expert",
        "respond",  # what can wait for the answer comes after it
        "remember",
        "summarise_history",
    ]


def test_a_packaged_workflow_loads_by_name() -> None:
    assert resolve_workflow("default_agent_loop") == DEFAULT_WORKFLOW == resolve_workflow(None)


BAD = [
    # (file text, line, field, words in the message)
    ("name: x\nsteps:\n  - id: a\n    use: respond\n   bad indent: 1\n", 5, None, "not valid YAML"),
    ("name: x\nsteps:\n  - id: a\n    use: respond\n  - id: b\n    use: teleport\n", 6, "steps.1.use", "teleport"),
    ("name: x\nsteps:\n  - id: a\n    use: recall_memory\n    with:\n      k: many\n", 6, "steps.0.with.k", "integer"),
    (
        "name: x\nsteps:\n  - id: a\n    use: route\n    with:\n      strateg: semantic\n",
        6,
        "steps.0.with.strateg",
        "Extra",
    ),
    ("name: x\nsteps:\n  - id: a\n    step: respond\n", 3, "steps.0.use", "Field required"),
    ("name: x\nsteps:\n  - id: a\n    use: respond\n  - id: a\n    use: respond\n", 2, "steps", "used twice"),
    ("name: x\nsteps: []\n", 2, "steps", "at least 1"),
    ("- just\n- a list\n", 1, None, "mapping"),
]


@pytest.mark.parametrize(("text", "line", "field", "words"), BAD)
def test_a_malformed_workflow_names_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str | None, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(WorkflowLoadError) as info:
        load_workflow(path, default_registry())
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), line, field)
    assert str(err).startswith(f"{path}:{line}: ")
    assert words in str(err)


def test_a_declared_step_without_a_body_is_refused(tmp_path: Path) -> None:
    registry = default_registry()
    registry.declare("teleport", description="a plugin's promise, not kept yet")
    path = write(tmp_path, "name: x\nsteps:\n  - id: a\n    use: teleport\n")
    with pytest.raises(WorkflowLoadError, match="extension point") as info:
        load_workflow(path, registry)
    assert (info.value.line, info.value.field) == (4, "steps.0.use")


def test_a_missing_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(WorkflowLoadError, match="cannot read"):
        load_workflow(tmp_path / "nope.yaml", default_registry())


def test_the_agent_refuses_a_malformed_workflow_setting(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nsteps:\n  - id: a\n    use: teleport\n")
    with pytest.raises(WorkflowLoadError, match=f"{path}:4"):
        AgentRuntime(settings=AgentSettings(workflow=path))


def test_the_process_exits_on_a_malformed_workflow(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nsteps:\n  - id: a\n    use: respond\n    with: {loud: true}\n")
    env = {"PATH": "/usr/bin:/bin", "FLEETMIND_STATE_DIR": str(tmp_path), "FLEETMIND_AGENT_WORKFLOW": str(path)}
    out = subprocess.run(
        [sys.executable, "-m", "fleetmind.apps.agent_process", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "bad agent configuration" in out.stderr and f"{path}:5" in out.stderr


@pytest.mark.asyncio
async def test_a_user_workflow_with_a_plugin_step_runs_in_the_pipeline(
    tmp_path: Path, make_runtime, llama_server_url: str
) -> None:
    path = write(
        tmp_path,
        "name: terse\nsteps:\n"
        "  - {id: tag, use: prefix_user, with: {text: 'Briefly: '}}\n"
        "  - {id: route, use: route, with: {strategy: default}}\n"
        "  - {id: answer, use: call_expert}\n"
        "  - {id: respond, use: respond}\n",
    )
    runtime = await make_runtime(experts=f"general={llama_server_url}", workflow=str(path), step_plugins="steps_plugin")
    assert runtime.workflow.name == "terse"
    events = await collect(runtime.submit(make_request("Tell me about the sea.")))
    assert events[-1].type == "done" and events[-1].expert == "general"
    # The plugin's step changed what the expert saw: the answer is the one to the prefixed question.
    assert (
        "".join(e.text for e in events[:-1])
        == direct_completion(llama_server_url, "Briefly: Tell me about the sea.")[0]
    )


def test_a_plugin_cannot_replace_a_working_step() -> None:
    registry = default_registry()
    with pytest.raises(ValueError, match="already registered"):
        registry.register("respond", params=registry.get("respond").params, description="x")(  # type: ignore[union-attr]
            registry.get("respond").run  # type: ignore[union-attr,arg-type]
        )


@pytest.mark.asyncio
async def test_a_workflow_that_never_responds_ends_with_an_error(
    tmp_path: Path, make_runtime, llama_server_url: str
) -> None:
    path = write(tmp_path, "name: mute\nsteps:\n  - {id: route, use: route}\n")
    runtime = await make_runtime(experts=f"general={llama_server_url}", workflow=str(path))
    events = await collect(runtime.submit(make_request("Hello?")))
    assert [(e.type, e.code) for e in events] == [("error", "internal")]
    assert "without responding" in (events[0].message or "")
