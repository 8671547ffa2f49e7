"""The built-in step types, registered through :meth:`StepRegistry.register` like any plugin's.

``load_history`` puts the conversation's short-term history before the new messages; ``recall_memory`` finds
long-term memories close in meaning to the user's message; ``route`` orders the experts (by name, by meaning,
by health); ``call_expert`` streams the answer from the first expert that works, failing over before the first
token; ``remember`` writes what is worth keeping of the user's message (facts, what they ask to be remembered) to
long-term memory, once, a changed fact in place of the old one; ``respond`` ends the request and records the
exchange. ``call_tool``, ``ask_approval`` and ``reflect`` live in :mod:`fleetmind.agent.workflows.tool_steps`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fleetmind.agent import AllExpertsFailedError
from fleetmind.agent.frames import AgentDeltaFrame, AgentDoneFrame
from fleetmind.agent.routing import RoutePlan, plan_route
from fleetmind.agent.workflows.context import StepContext
from fleetmind.agent.workflows.registry import NoParams, StepRegistry
from fleetmind.contracts.names import ROUTED_MODEL
from fleetmind.contracts.protocol import ChatMessage, SamplingParams
from fleetmind.llm import EmbeddingError
from fleetmind.llm.chat import Completion, Expert, ExpertError, ExpertRejectedError, TextDelta
from fleetmind.memory.policy import worth_remembering

log = logging.getLogger("fleetmind.agent.workflow")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HistoryParams(_Params):
    max_messages: int = Field(default=20, ge=0, le=1000, description="Most history messages put before the new ones.")
    summary_header: str = "Summary of the earlier part of this conversation:"


class SummariseParams(_Params):
    max_tokens: int = Field(default=160, ge=16, le=2048, description="Longest summary.")
    instruction: str = (
        "Summarise the conversation below in at most four sentences. Keep names, numbers, facts and decisions; "
        "leave out greetings."
    )


class RecallParams(_Params):
    k: int = Field(default=3, ge=1, le=50, description="Most memories recalled.")
    # Measured with all-MiniLM-L6-v2 (bench.answers' questions against stored facts): a question about a stored fact
    # scores 0.42-0.67 to it, an unrelated question at most 0.33 to any; below this a memory stays out of the prompt.
    min_score: float = Field(default=0.40, ge=-1.0, le=1.0, description="Least cosine similarity to count.")
    header: str = "What the user told you in earlier conversations:"


class RouteParams(_Params):
    strategy: Literal["semantic", "default"] = Field(
        default="semantic",
        description="semantic: the generic model goes to the expert whose description is closest to the query.",
    )


class CallExpertParams(_Params):
    stream: bool = Field(
        default=True, description="false: keep the answer until respond (so that a reflect step may revise it)."
    )


class RememberParams(_Params):
    # The same fact said again ("My name is Alice." / "My name's Alice.": 0.96 with all-MiniLM-L6-v2) is not stored
    # twice; a different fact of the same shape is ("My brother lives in Lyon." / "My sister ...": 0.89).
    dedupe_above: float = Field(
        default=0.92, ge=0.0, le=1.0, description="A memory at least this similar to one the owner has is not stored."
    )
    # A changed fact ("My favourite colour is blue." then "... green.") replaces the old one: same subject and verb,
    # another value (memory.supersede's rule decides; a changed value scores 0.57-0.97 to the old fact, so above
    # dedupe_above too). The rule reads only the owner's memories at least this similar; measured: every changed
    # fact of 28 scored >= 0.57, and the one rule match that was no change ("I work at a bakery." / "I work on
    # Saturdays.") 0.42. 1.0: never replace.
    replace_above: float = Field(
        default=0.50, ge=0.0, le=1.0, description="Least similarity at which a changed fact replaces the old one."
    )


async def load_history(ctx: StepContext, params: HistoryParams) -> None:
    history = ctx.services.history
    if history is None or ctx.conversation_id is None or params.max_messages == 0:
        return
    # the conversation is the request owner's: another key's with the same id is another conversation
    summary = history.summary(ctx.conversation_id, owner=ctx.request.owner)
    if summary:
        ctx.vars.setdefault("system_notes", []).append(f"{params.summary_header}\n{summary}")
    earlier = history.get(ctx.conversation_id, owner=ctx.request.owner)[-params.max_messages :]
    if not earlier:
        return
    system = [m for m in ctx.messages if m.role == "system"]
    rest = [m for m in ctx.messages if m.role != "system"]
    ctx.messages = [*system, *earlier, *rest]


async def recall_memory(ctx: StepContext, params: RecallParams) -> None:
    memory = ctx.services.memory
    query = ctx.last_user_text()
    if memory is None or not query:
        return
    try:
        # the request's one query embedding (shared with routing and the tool offer), then the owner's search
        vector = await ctx.query_vector()
        found = memory.search_vectors(vector[None, :], params.k, owner=ctx.request.owner)[0]
    except EmbeddingError as exc:
        # Memory makes answers better; without it the agent still answers.
        log.warning("memory recall skipped: %s", exc, extra={"event": "memory_unavailable", "error": str(exc)})
        return
    hits = [h for h in found if h.score >= params.min_score]
    ctx.recalled = hits
    log.info(
        "recalled %d memories for %s",
        len(hits),
        ctx.request_id,
        extra={
            "event": "memory_recall",
            "request_id": ctx.request_id,
            "memories": [{"text": h.text, "score": round(h.score, 3)} for h in hits],
        },
    )
    if hits:
        note = params.header + "\n" + "\n".join(f"- {h.text}" for h in hits)
        ctx.vars.setdefault("system_notes", []).append(note)


async def route(ctx: StepContext, params: RouteParams) -> None:
    services = ctx.services
    experts = await services.directory.experts()
    plan = plan_route(
        ctx.request.model,
        experts,
        services.directory.is_healthy,
        default_expert=services.default_expert,
        discovery_error=services.directory.discovery_error,
    )
    scores: dict[str, float] = {}
    if params.strategy == "semantic" and services.router is not None and ctx.request.model == ROUTED_MODEL:
        previous = services.router.answered_by(ctx.request.owner, ctx.previous_user_text())
        choice = await services.router.choose(
            ctx.last_user_text(),
            plan.candidates,
            services.directory.is_healthy,
            vector=ctx.query_vector,
            previous=previous,
        )
        if choice is not None:
            scores = choice.scores
            first = [e for e in plan.candidates if e.name == choice.expert]
            rest = [e for e in plan.candidates if e.name != choice.expert]
            plan = RoutePlan(tuple(first + rest), f"query closest to {choice.expert!r} ({choice.reason})")
    ctx.plan = plan
    log.info(
        "route %s: %s",
        ctx.request_id,
        plan.reason,
        extra={
            "event": "route",
            "request_id": ctx.request_id,
            "model": ctx.request.model,
            "expert": plan.candidates[0].name,
            "candidates": [e.name for e in plan.candidates],
            "scores": scores,
        },
    )


def _outgoing_messages(ctx: StepContext, expert_prompt: str | None) -> list[ChatMessage]:
    """The messages for the expert: its own system prompt (when the caller sent none) plus the steps' notes."""
    notes: list[str] = ctx.vars.get("system_notes", [])
    if not notes:
        return ctx.messages  # the expert's prompt is added by completion_payload, as before workflows
    messages = list(ctx.messages)
    if messages and messages[0].role == "system":
        merged = "\n\n".join([messages[0].content or "", *notes]).strip()
        messages[0] = messages[0].model_copy(update={"content": merged})
    else:
        merged = "\n\n".join([p for p in (expert_prompt, *notes) if p])
        messages.insert(0, ChatMessage(role="system", content=merged))
    return messages


def _skip_echo(text: str, echo: str) -> tuple[str, str]:
    """``text`` without the part that repeats ``echo`` (the prefill already sent), and what is left of ``echo``."""
    if not echo:
        return text, ""
    if text.startswith(echo):
        return text[len(echo) :], ""
    if echo.startswith(text):
        return "", echo[len(text) :]
    return text, ""  # a server that does not echo the prefill: everything is new


async def call_expert(ctx: StepContext, params: CallExpertParams) -> None:
    if ctx.plan is None:
        await route(ctx, RouteParams())
    assert ctx.plan is not None
    ctx.vars["buffered"] = not params.stream
    directory, client = ctx.services.directory, ctx.services.client
    failures: list[ExpertError] = []
    candidates = ctx.plan.candidates
    for attempt, expert in enumerate(candidates):
        produced = False
        messages = _outgoing_messages(ctx, expert.system_prompt)
        partial = "".join(ctx.answer)
        if partial:
            # An expert died mid-answer: llama-server continues a final assistant message (prefill), so the next
            # expert picks up where the text stopped and the caller's stream goes on without a seam.
            messages = [*messages, ChatMessage(role="assistant", content=partial)]
        request = ctx.request.model_copy(update={"messages": messages})
        try:
            async with contextlib.aclosing(client.stream_chat(expert, request)) as stream:
                echo = partial  # llama-server streams a continued message from its start: drop what was sent
                async for item in stream:
                    if isinstance(item, TextDelta):
                        text, echo = _skip_echo(item.text, echo)
                        if not text:
                            continue
                        produced = True
                        ctx.answer.append(text)
                        if params.stream:
                            await ctx.emit(AgentDeltaFrame(request_id=ctx.request_id, text=text, expert=expert.name))
                    elif isinstance(item, Completion):
                        directory.record_success(expert)
                        ctx.expert, ctx.completion = expert, item
                        return
        except ExpertError as exc:
            directory.record_failure(expert, str(exc))
            failures.append(exc)
            nxt = candidates[attempt + 1].name if attempt + 1 < len(candidates) else None
            log.warning(
                "expert %s failed for %s%s%s",
                expert.name,
                ctx.request_id,
                " mid-answer" if produced else "",
                f"; failing over to {nxt}" if nxt else "; no expert left",
                extra={
                    "event": "expert_failover",
                    "request_id": ctx.request_id,
                    "expert": expert.name,
                    "expert_url": expert.url,
                    "mid_answer": produced,
                    "next_expert": nxt,
                    "error": str(exc),
                    "cause": repr(exc.__cause__) if exc.__cause__ else None,
                },
            )
    error = AllExpertsFailedError("every expert failed: " + "; ".join(str(f) for f in failures))
    if failures and all(isinstance(f, ExpertRejectedError) for f in failures):
        # Every expert refused the request itself: only the caller can fix it.
        error.code = ExpertRejectedError.code
    raise error


async def ask_quietly(ctx: StepContext, experts: list[Expert], messages: list[ChatMessage], **params: Any) -> str:
    """The whole answer of the first of ``experts`` that gives one, streamed to nobody (summaries, tool choices,
    critiques); ExpertError with every failure when none does."""
    failures: list[str] = []
    for expert in experts:
        request = ctx.request.model_copy(update={"messages": messages, "params": SamplingParams(**params)})
        parts: list[str] = []
        try:
            async with contextlib.aclosing(ctx.services.client.stream_chat(expert, request)) as stream:
                async for item in stream:
                    if isinstance(item, TextDelta):
                        parts.append(item.text)
            return "".join(parts)
        except ExpertError as exc:
            failures.append(str(exc))
    raise ExpertError("; ".join(failures) or "no expert to ask")


async def remember(ctx: StepContext, params: RememberParams) -> None:
    """Store what the user's message says worth keeping (:func:`fleetmind.memory.policy.worth_remembering`: facts and
    what they ask to be remembered; never questions or requests), unless the owner already has it; a fact that
    changed replaces the owner's old one."""
    memory = ctx.services.memory
    text = ctx.last_user_text().strip()
    if memory is None:
        return
    worth = worth_remembering(text)
    if worth is None:
        log.debug(
            "nothing to remember in %s",
            ctx.request_id,
            extra={"event": "memory_skip", "request_id": ctx.request_id},
        )
        return
    try:
        # the whole message kept: the request's one embedding (made for recall) is its vector too
        vector = await ctx.query_vector() if worth.text == text and ctx.services.embedder is not None else None
        stored = await memory.add_fact(
            worth.text,
            duplicate_above=params.dedupe_above,
            replace_above=params.replace_above,
            vector=vector,
            conversation_id=ctx.conversation_id,
            owner=ctx.request.owner,
        )
    except EmbeddingError as exc:
        log.warning("memory write skipped: %s", exc, extra={"event": "memory_unavailable", "error": str(exc)})
        return
    log.info(
        "%s a %s of %s%s",
        "remembered" if stored.id is not None else "already knew",
        worth.kind.replace("_", " "),
        ctx.request_id,
        f", replacing {len(stored.replaced)} older" if stored.replaced else "",
        extra={
            "event": "memory_write" if stored.id is not None else "memory_duplicate",
            "request_id": ctx.request_id,
            "kind": worth.kind,
            "chars": len(worth.text),
            "replaced": list(stored.replaced),
        },
    )


async def respond(ctx: StepContext, params: NoParams) -> None:
    if ctx.completion is None:
        raise ExpertError("nothing to respond with: no expert answered")
    expert = ctx.expert.name if ctx.expert else None
    if expert is not None and ctx.services.router is not None:
        ctx.services.router.answered(ctx.request.owner, ctx.last_user_text(), expert)
    if ctx.vars.get("buffered") and ctx.answer:
        await ctx.emit(AgentDeltaFrame(request_id=ctx.request_id, text="".join(ctx.answer), expert=expert))
    await ctx.emit(
        AgentDoneFrame(
            request_id=ctx.request_id,
            finish_reason=ctx.completion.finish_reason,
            usage=ctx.completion.usage,
            expert=expert,
        )
    )
    ctx.responded = True
    history = ctx.services.history
    if history is not None and ctx.conversation_id is not None:
        new = [m for m in ctx.request.messages if m.role != "system"]
        evicted = history.extend(
            ctx.conversation_id,
            [*new, ChatMessage(role="assistant", content="".join(ctx.answer))],
            owner=ctx.request.owner,
        )
        ctx.vars["evicted_history"] = evicted


async def summarise_history(ctx: StepContext, params: SummariseParams) -> None:
    """Fold the messages that fell out of the short-term history into the conversation's running summary.

    Runs after ``respond``: the caller already has its answer; the expert that answered writes the summary.
    """
    history, evicted = ctx.services.history, ctx.vars.get("evicted_history") or []
    if history is None or ctx.conversation_id is None or not evicted or ctx.expert is None:
        return
    previous = history.summary(ctx.conversation_id, owner=ctx.request.owner)
    lines = [f"Earlier summary: {previous}"] if previous else []
    lines += [f"{m.role}: {m.content}" for m in evicted if m.content]
    messages = [
        ChatMessage(role="system", content=params.instruction),
        ChatMessage(role="user", content="\n".join(lines)),
    ]
    summary = (await ask_quietly(ctx, [ctx.expert], messages, temperature=0.0, max_tokens=params.max_tokens)).strip()
    if summary:
        history.set_summary(ctx.conversation_id, summary, owner=ctx.request.owner)
        log.info(
            "summarised %d older messages of conversation %s",
            len(evicted),
            ctx.conversation_id,
            extra={"event": "history_summary", "request_id": ctx.request_id, "chars": len(summary)},
        )


def register_steps(registry: StepRegistry) -> None:
    """Register the built-in step types (the same hook a plugin module exposes)."""
    registry.register("load_history", params=HistoryParams, description="prepend the conversation's history")(
        load_history
    )
    registry.register("recall_memory", params=RecallParams, description="recall long-term memories by meaning")(
        recall_memory
    )
    registry.register("route", params=RouteParams, description="order the experts for this request")(route)
    registry.register("call_expert", params=CallExpertParams, description="stream the answer, with failover")(
        call_expert
    )
    registry.register("remember", params=RememberParams, description="keep the facts the user told, once")(remember)
    registry.register(
        "summarise_history", params=SummariseParams, description="fold old history into a running summary"
    )(summarise_history)
    registry.register("respond", params=NoParams, description="finish the request, record the exchange")(respond)
    from fleetmind.agent.workflows.tool_steps import register_tool_steps

    register_tool_steps(registry)
