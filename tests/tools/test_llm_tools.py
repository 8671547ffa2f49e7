"""planner, orchestrator and swarm against a real llama-server (the tiny random model: the shape and the HTTP path
are tested, not the meaning), the planner against an endpoint with a fixed reply (what it asks, what it makes of
the answer), and the plan parser on the replies a model really gives."""

from __future__ import annotations

import asyncio
import json
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

from fleetmind.tools.approvals import ApprovalBroker
from fleetmind.tools.base import ToolContext
from fleetmind.tools.builtin.llm import parse_steps
from fleetmind.tools.runner import ToolRunner
from tests.conftest import serve_http

from .conftest import MakeRunner, approve_next, run_ok


def test_parse_steps_json_lists_and_fallback() -> None:
    reply = (
        'Sure! Here is the plan:\n```json\n[{"description": "check", "tool": "cluster_status", "arguments": {}},'
        ' "then report"]\n```'
    )
    steps, how = parse_steps(reply, "task")
    assert how == "json" and [s["tool"] for s in steps] == ["cluster_status", None]
    assert steps[1] == {"n": 2, "description": "then report", "tool": None, "arguments": {}}
    steps, how = parse_steps('{"steps": [{"step": "a"}, {"task": "b", "args": {"x": 1}}]}', "t")
    assert how == "json" and [(s["description"], s["arguments"]) for s in steps] == [("a", {}), ("b", {"x": 1})]
    steps, how = parse_steps("1. look at the logs\n2) restart it\n- tell the user\nnoise", "t")
    assert how == "list" and [s["description"] for s in steps] == ["look at the logs", "restart it", "tell the user"]
    steps, how = parse_steps("zxqv ]] {{ random junk", "fix the node")
    assert how == "fallback" and steps == [{"n": 1, "description": "fix the node", "tool": None, "arguments": {}}]
    many, _ = parse_steps("\n".join(f"{i}. s{i}" for i in range(1, 30)), "t", max_steps=4)
    assert len(many) == 4


class PlanningModel(BaseHTTPRequestHandler):
    """A chat-completions endpoint that gives every request the same reply and keeps what it was asked."""

    reply = ""
    asked: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        self.asked.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
        body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": self.reply}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body.encode())))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


# what a small model really writes: chatter around a fenced JSON plan, a tool that does not exist, a bare string
PLAN_REPLY = (
    "Sure! Here is a plan:\n```json\n["
    '{"description": "See how full the disks are", "tool": "disk_usage", "arguments": {"path": "/"}}, '
    '{"description": "Restart the failed jobs", "tool": "restart_everything", "arguments": {"force": true}}, '
    '"Tell the user what was done"]\n```\nLet me know if you need more.'
)


async def test_planner_sends_the_task_and_tools_and_turns_the_reply_into_steps(
    runner: ToolRunner, context: ToolContext
) -> None:
    # the model's reply is fixed, so the parsing and the tool checks are tested, never a model's mood
    PlanningModel.reply, PlanningModel.asked = PLAN_REPLY, []
    task = "Check the cluster and restart failed jobs."
    with serve_http(PlanningModel) as port:
        context.llm_url = f"http://127.0.0.1:{port}"
        out = await run_ok(runner, "planner", {"task": task, "max_steps": 4, "max_tokens": 32})
    ((path, asked),) = PlanningModel.asked
    assert path == "/v1/chat/completions" and asked["max_tokens"] == 32
    system, user = asked["messages"]
    assert user == {"role": "user", "content": task}
    assert "at most 4 short steps" in system["content"]
    offered = set(system["content"].rpartition("Tools you may use: ")[2].rstrip(".").split(", "))
    assert offered == {s.name for s in runner.specs()} - {"planner", "orchestrator"}
    assert out == {
        "task": task,
        "parsed": "json",
        "raw": PLAN_REPLY,
        "steps": [
            {"n": 1, "description": "See how full the disks are", "tool": "disk_usage", "arguments": {"path": "/"}},
            {
                "n": 2,
                "description": "Restart the failed jobs",
                "tool": None,  # not a tool of this runner: kept visible, never called
                "unknown_tool": "restart_everything",
                "arguments": {"force": True},
            },
            {"n": 3, "description": "Tell the user what was done", "tool": None, "arguments": {}},
        ],
    }
    context.llm_url = "http://127.0.0.1:9"  # nothing listens there
    down = await runner.run("planner", {"task": "x"}, requester="t")
    assert down.status == "error" and "LLM call" in (down.error or "")


async def test_orchestrator_runs_tool_steps_through_the_gates(
    make_runner: MakeRunner, context: ToolContext, llama_server_url: str
) -> None:
    context.llm_url = llama_server_url
    broker = ApprovalBroker(timeout_s=10)
    runner = make_runner(approvals=broker)
    steps = [
        {"description": "add", "tool": "calculator", "arguments": {"expression": "2+2"}},
        {"description": "say something about the result", "tool": None},
        {"description": "dangerous", "tool": "shell", "arguments": {"command": "touch shell-ran"}},
        {"description": "nested", "tool": "orchestrator", "arguments": {"task": "x"}},
    ]
    out, _ = await asyncio.gather(
        run_ok(runner, "orchestrator", {"steps": steps, "max_tokens": 16}),
        approve_next(broker, approve=False),
    )
    statuses = [r["status"] for r in out["results"]]
    assert statuses == ["ok", "ok", "denied", "refused"]
    assert out["results"][0]["output"]["result"] == 4 and isinstance(out["results"][1]["output"], str)
    assert not (context.workspace / "shell-ran").exists()
    audit = runner.audit.read()
    assert any(r["tool"] == "shell" and "via orchestrator" in r["requester"] for r in audit)
    planned = await run_ok(runner, "orchestrator", {"task": "Say hello.", "max_tokens": 16, "parallel": True})
    assert planned["planned"] is True and len(planned["results"]) >= 1


async def test_swarm_asks_in_parallel_and_merges(
    runner: ToolRunner, context: ToolContext, llama_server_url: str
) -> None:
    context.llm_url = llama_server_url
    out = await run_ok(runner, "swarm", {"question": "What is 2+2?", "n": 3, "max_tokens": 16, "merge": "vote"})
    assert len(out["answers"]) == 3 and all(isinstance(a["answer"], str) for a in out["answers"])
    assert out["merged"] in [a["answer"].strip() for a in out["answers"]]
    context.experts = {"a": llama_server_url, "b": "http://127.0.0.1:9"}
    mixed = await run_ok(runner, "swarm", {"question": "Hi?", "max_tokens": 16, "merge": "llm"})
    by_name = {a["expert"]: a for a in mixed["answers"]}
    assert by_name["a"]["answer"] is not None and by_name["b"]["error"] and isinstance(mixed["merged"], str)
    unknown = await runner.run("swarm", {"question": "x", "experts": ["nobody"]}, requester="t")
    assert unknown.status == "error" and "unknown experts" in (unknown.error or "")


async def test_in_the_agent_the_tools_ask_the_agents_own_experts(
    runner: ToolRunner, context: ToolContext, llama_server_url: str
) -> None:
    # the agent process's composition root hands the tools its expert directory; no LLM endpoint is configured
    from fleetmind.agent.experts import ExpertDirectory

    directory = ExpertDirectory(fixed={"general": llama_server_url, "coding": llama_server_url})
    context.llm_url, context.experts = None, {}
    context.expert_directory = directory.urls
    plan = await run_ok(runner, "planner", {"task": "Say hello."})
    assert plan["steps"]
    out = await run_ok(runner, "swarm", {"question": "What is 2+2?", "max_tokens": 16, "merge": "none"})
    assert sorted(a["expert"] for a in out["answers"]) == ["coding", "general"]
    assert all(a["answer"] is not None for a in out["answers"])
    directory.record_failure(next(e for e in await directory.experts() if e.name == "coding"), "down")
    assert list(await context.known_experts()) == ["general"]  # an expert cooling down after a failure is not asked
