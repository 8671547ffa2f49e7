"""Running a loaded workflow for one request: its steps in order, then a check that it answered.

Errors a step raises travel to TwinService, which turns them into the request's error event, exactly as
before workflows existed; cancellation and deadlines likewise stay with TwinService. Each request ends with one
structured ``workflow_timings`` line: the milliseconds each step took and when the first text went out
(``first_text_ms``), so what stands before the first token shows in the logs of a running agent.
"""

from __future__ import annotations

import logging
import time

from fleetmind.agent.frames import AgentDeltaFrame, AgentOutputFrame
from fleetmind.agent.workflows import WorkflowRuntimeError
from fleetmind.agent.workflows.context import AgentServices, Emit, StepContext
from fleetmind.agent.workflows.loader import Workflow
from fleetmind.contracts.protocol import AgentRequest

log = logging.getLogger("fleetmind.agent.workflow")


class WorkflowRunner:
    """Runs one workflow with one set of services."""

    def __init__(self, workflow: Workflow, services: AgentServices) -> None:
        self.workflow = workflow
        self.services = services

    async def run(self, request: AgentRequest, emit: Emit) -> StepContext:
        started = time.perf_counter()
        first_text: list[float] = []

        async def timed_emit(frame: AgentOutputFrame) -> None:
            if not first_text and isinstance(frame, AgentDeltaFrame):
                first_text.append(time.perf_counter())
            await emit(frame)

        ctx = StepContext(request=request, services=self.services, emit=timed_emit, messages=list(request.messages))
        steps_ms: dict[str, float] = {}
        try:
            await self._steps(ctx, request, steps_ms)
        finally:
            log.info(
                "workflow of %s: %s",
                request.id,
                ", ".join(f"{k} {v:.1f} ms" for k, v in steps_ms.items()),
                extra={
                    "event": "workflow_timings",
                    "request_id": request.id,
                    "model": request.model,
                    "steps_ms": steps_ms,
                    "first_text_ms": round((first_text[0] - started) * 1000, 2) if first_text else None,
                    "total_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
        return ctx

    async def _steps(self, ctx: StepContext, request: AgentRequest, steps_ms: dict[str, float]) -> None:
        for step in self.workflow.steps:
            assert step.type.run is not None  # the loader refuses steps without a body
            log.debug(
                "step %s (%s) for %s",
                step.id,
                step.type.name,
                request.id,
                extra={"event": "workflow_step", "request_id": request.id, "step": step.id, "use": step.type.name},
            )
            t0 = time.perf_counter()
            if not ctx.responded:
                await step.type.run(ctx, step.params)
                steps_ms[step.id] = round((time.perf_counter() - t0) * 1000, 2)
                continue
            # After the final frame an error can no longer reach the caller (its stream has ended): log it.
            try:
                await step.type.run(ctx, step.params)
            except Exception:
                log.exception(
                    "step %s failed after the answer was sent",
                    step.id,
                    extra={"event": "workflow_step_failed", "request_id": request.id, "step": step.id},
                )
            steps_ms[step.id] = round((time.perf_counter() - t0) * 1000, 2)
        if not ctx.responded:
            raise WorkflowRuntimeError(f"workflow {self.workflow.name!r} ended without responding to the request")
