"""Running a loaded workflow for one request: its steps in order, then a check that it answered.

Errors a step raises travel to TwinService, which turns them into the request's error event, exactly as
before workflows existed; cancellation and deadlines likewise stay with TwinService.
"""

from __future__ import annotations

import logging

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
        ctx = StepContext(request=request, services=self.services, emit=emit, messages=list(request.messages))
        for step in self.workflow.steps:
            assert step.type.run is not None  # the loader refuses steps without a body
            log.debug(
                "step %s (%s) for %s",
                step.id,
                step.type.name,
                request.id,
                extra={"event": "workflow_step", "request_id": request.id, "step": step.id, "use": step.type.name},
            )
            if not ctx.responded:
                await step.type.run(ctx, step.params)
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
        if not ctx.responded:
            raise WorkflowRuntimeError(f"workflow {self.workflow.name!r} ended without responding to the request")
        return ctx
