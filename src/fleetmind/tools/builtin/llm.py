"""Tools that think with the LLM: ``planner`` (a task → numbered steps), ``orchestrator`` (runs steps on tools or
experts and gathers the results) and ``swarm`` (asks several experts in parallel and merges their answers).

They call an OpenAI-compatible ``/v1/chat/completions`` (llama-server) from the context. A model's plan is parsed
robustly — a JSON array or object anywhere in the reply, else a numbered or bulleted list, else the whole task
as one step — so even a weak model yields a usable list of ``{"n", "description", "tool", "arguments"}``.
The orchestrator runs tool steps through the same runner and gates as any other call: a plan never gets round
an approval.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from typing import Any

from fleetmind.llm.chat import ExpertError, complete
from fleetmind.tools.base import ToolCall, ToolContext, tool
from fleetmind.tools.errors import ToolExecutionError

MAX_STEPS = 12


async def chat(
    ctx: ToolContext,
    messages: list[dict[str, str]],
    *,
    url: str | None = None,
    max_tokens: int = 256,
    temperature: float = 0.2,
    timeout_s: float = 120.0,
) -> str:
    """One non-streamed chat completion (:func:`fleetmind.llm.chat.complete`); the reply's text.

    ``url`` defaults to the configured endpoint, else the agent's default expert (its expert directory).
    """
    base = url or await ctx.llm_endpoint()
    if not base:
        raise ToolExecutionError("no LLM endpoint: no expert is healthy and FLEETMIND_TOOLS_LLM_URL is not set")
    try:
        reply = await complete(
            base,
            messages,
            # an expert of the stack takes its service secret as the API key (security/service.py)
            api_key=ctx.llm_api_key or None,
            timeout_s=timeout_s,
            model=ctx.llm_model,
            max_tokens=max_tokens,
            temperature=temperature,
        )
    except ExpertError as exc:
        raise ToolExecutionError(f"LLM call failed: {exc}") from None
    return reply.text


def _json_candidates(text: str) -> list[Any]:
    """Every JSON value that starts at a '[' or '{' in ``text`` (first ones first)."""
    decoder = json.JSONDecoder()
    found = []
    for m in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        found.append(value)
    return found


def _step(n: int, item: Any) -> dict[str, Any] | None:
    if isinstance(item, str) and item.strip():
        return {"n": n, "description": item.strip(), "tool": None, "arguments": {}}
    if isinstance(item, dict):
        text = item.get("description") or item.get("step") or item.get("task") or item.get("action") or ""
        tool_name = item.get("tool")
        args = item.get("arguments") or item.get("args") or {}
        if not str(text).strip() and not tool_name:
            return None
        return {
            "n": n,
            "description": str(text).strip() or f"call {tool_name}",
            "tool": str(tool_name) if isinstance(tool_name, str) and tool_name else None,
            "arguments": args if isinstance(args, dict) else {},
        }
    return None


def parse_steps(text: str, task: str, *, max_steps: int = MAX_STEPS) -> tuple[list[dict[str, Any]], str]:
    """(steps, how they were found: ``json`` | ``list`` | ``fallback``); never an empty list."""
    for value in _json_candidates(text):
        items = value.get("steps") if isinstance(value, dict) else value
        if isinstance(items, list):
            steps = [s for s in (_step(i + 1, it) for i, it in enumerate(items)) if s]
            if steps:
                return [dict(s, n=i + 1) for i, s in enumerate(steps[:max_steps])], "json"
    lines = [
        m.group(1).strip()
        for m in re.finditer(r"^\s*(?:\d+[.)]|[-*•]|step\s*\d+\s*[:.)-])\s+(.+)$", text, re.IGNORECASE | re.MULTILINE)
    ]
    lines = [line for line in lines if len(line) > 1]
    if lines:
        return [_step(i + 1, line) for i, line in enumerate(lines[:max_steps])], "list"  # type: ignore[misc]
    return [{"n": 1, "description": task.strip(), "tool": None, "arguments": {}}], "fallback"


PLAN_PROMPT = (
    "Break the user's task into at most {max_steps} short steps. Answer only with a JSON array; each item is "
    '{{"description": "...", "tool": "<tool name or null>", "arguments": {{...}}}}. Tools you may use: {tools}.'
)


@tool(
    "planner",
    "Break a task into a short ordered list of steps (each may name a tool and its arguments).",
    {
        "type": "object",
        "properties": {
            "task": {"type": "string", "minLength": 1, "maxLength": 4000},
            "max_steps": {"type": "integer", "minimum": 1, "maximum": MAX_STEPS, "default": 6},
            "max_tokens": {"type": "integer", "minimum": 16, "maximum": 2048, "default": 384},
        },
        "required": ["task"],
    },
    timeout_s=180.0,
)
async def planner(call: ToolCall) -> dict[str, Any]:
    max_steps = int(call.args.get("max_steps", 6))
    names = [s.name for s in call.runner.specs() if s.name not in ("planner", "orchestrator")]
    messages = [
        {"role": "system", "content": PLAN_PROMPT.format(max_steps=max_steps, tools=", ".join(names))},
        {"role": "user", "content": call.args["task"]},
    ]
    raw = await chat(call.context, messages, max_tokens=int(call.args.get("max_tokens", 384)))
    steps, parsed = parse_steps(raw, call.args["task"], max_steps=max_steps)
    for step in steps:
        if step["tool"] is not None and step["tool"] not in names:
            step["unknown_tool"] = step["tool"]  # kept visible, but the orchestrator will ask an expert instead
            step["tool"] = None
    return {"task": call.args["task"], "steps": steps, "parsed": parsed, "raw": raw}


STEP_SCHEMA = {
    "type": "object",
    "properties": {
        "description": {"type": "string", "maxLength": 4000},
        "tool": {"type": ["string", "null"], "maxLength": 64},
        "arguments": {"type": "object"},
        "expert": {"type": "string", "maxLength": 64},
    },
}


async def _run_step(call: ToolCall, step: dict[str, Any], previous: list[dict[str, Any]]) -> dict[str, Any]:
    name = step.get("tool")
    if name:
        if name in ("orchestrator", "swarm"):
            return {"step": step, "status": "refused", "error": f"{name} cannot be nested in a plan"}
        outcome = await call.runner.run(
            name,
            step.get("arguments") or {},
            requester=f"{call.requester} via orchestrator {call.id}",
            reason=str(step.get("description") or ""),
        )
        return {"step": step, "status": outcome.status, "output": outcome.output, "error": outcome.error}
    expert = step.get("expert")
    url = await call.context.llm_endpoint(expert) if expert else None
    context = "\n".join(f"- {p['step'].get('description')}: {str(p.get('output'))[:500]}" for p in previous)
    messages = [
        {
            "role": "system",
            "content": "Do this one step of a larger task. Be brief."
            + (f"\nResults so far:\n{context}" if context else ""),
        },
        {"role": "user", "content": str(step.get("description") or "")},
    ]
    try:
        answer = await chat(call.context, messages, url=url, max_tokens=int(call.args.get("max_tokens", 256)))
    except ToolExecutionError as exc:
        return {"step": step, "status": "error", "output": None, "error": str(exc)}
    return {"step": step, "status": "ok", "output": answer, "error": None}


@tool(
    "orchestrator",
    "Carry out a task: plan it (or take the given steps), run each step on its tool or an expert, and gather the "
    "results. Tool steps go through the same approval gates as any call.",
    {
        "type": "object",
        "properties": {
            "task": {"type": "string", "maxLength": 4000},
            "steps": {"type": "array", "items": STEP_SCHEMA, "minItems": 1, "maxItems": MAX_STEPS},
            "parallel": {"type": "boolean", "default": False},
            "max_tokens": {"type": "integer", "minimum": 16, "maximum": 2048, "default": 256},
        },
        "anyOf": [{"required": ["task"]}, {"required": ["steps"]}],
    },
    timeout_s=900.0,
)
async def orchestrator(call: ToolCall) -> dict[str, Any]:
    steps = call.args.get("steps")
    plan: dict[str, Any] | None = None
    if not steps:
        outcome = await call.runner.run(
            "planner", {"task": call.args["task"]}, requester=f"{call.requester} via orchestrator {call.id}"
        )
        if not outcome.ok:
            raise ToolExecutionError(f"planning failed: {outcome.error}")
        plan = outcome.output
        steps = plan["steps"]
    results: list[dict[str, Any]] = []
    if call.args.get("parallel"):
        results = list(await asyncio.gather(*(_run_step(call, s, []) for s in steps)))
    else:
        for step in steps:
            results.append(await _run_step(call, step, results))
    ok = sum(r["status"] == "ok" for r in results)
    return {
        "task": call.args.get("task"),
        "planned": plan is not None,
        "results": results,
        "summary": f"{ok} of {len(results)} steps ok",
    }


@tool(
    "swarm",
    "Ask several experts the same question in parallel and merge their answers (by an LLM, or by majority vote).",
    {
        "type": "object",
        "properties": {
            "question": {"type": "string", "minLength": 1, "maxLength": 4000},
            "experts": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
            "n": {"type": "integer", "minimum": 1, "maximum": 8, "default": 3},
            "merge": {"enum": ["llm", "vote", "none"], "default": "llm"},
            "max_tokens": {"type": "integer", "minimum": 16, "maximum": 2048, "default": 256},
        },
        "required": ["question"],
    },
    timeout_s=600.0,
)
async def swarm(call: ToolCall) -> dict[str, Any]:
    ctx = call.context
    known = await ctx.known_experts()
    names = call.args.get("experts") or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ToolExecutionError(f"unknown experts {unknown}; known: {sorted(known)}")
    # with one endpoint, the "experts" are the same model asked n times at different temperatures
    members: list[tuple[str, str | None, float]] = [(n, known[n], 0.3) for n in names] or [
        (f"sample-{i + 1}", None, 0.3 + 0.3 * i) for i in range(int(call.args.get("n", 3)))
    ]
    max_tokens = int(call.args.get("max_tokens", 256))
    question = call.args["question"]

    async def ask(name: str, url: str | None, temperature: float) -> dict[str, Any]:
        try:
            text = await chat(
                ctx, [{"role": "user", "content": question}], url=url, max_tokens=max_tokens, temperature=temperature
            )
            return {"expert": name, "answer": text, "error": None}
        except ToolExecutionError as exc:
            return {"expert": name, "answer": None, "error": str(exc)}

    answers = list(await asyncio.gather(*(ask(*m) for m in members)))
    good = [a["answer"] for a in answers if a["answer"] is not None]
    if not good:
        raise ToolExecutionError("no expert answered: " + "; ".join(str(a["error"]) for a in answers))
    merge = call.args.get("merge", "llm")
    merged: str | None
    if merge == "vote":
        merged = Counter(a.strip() for a in good).most_common(1)[0][0]
    elif merge == "llm":
        listing = "\n\n".join(f"Answer {i + 1}:\n{a}" for i, a in enumerate(good))
        merged = await chat(
            ctx,
            [
                {"role": "system", "content": "Merge these answers into one short, correct answer."},
                {"role": "user", "content": f"Question: {question}\n\n{listing}"},
            ],
            max_tokens=max_tokens,
        )
    else:
        merged = None
    return {"question": question, "answers": answers, "merged": merged, "merge": merge}
