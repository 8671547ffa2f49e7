"""TwinService, the agent's brain: a pipecat processor that answers each chat request through an expert.

Each ``AgentRequestFrame`` starts its own task, so requests run side by side and ``process_frame`` never waits
on a model. The task runs the workflow, whose steps plan a route (:mod:`fleetmind.agent.routing`),
stream from the first candidate and push ``AgentDeltaFrame``/``AgentDoneFrame`` downstream; when an expert
fails or stalls before it has produced any text, the next candidate gets the request (after the first token
the answer cannot be restarted invisibly, so a failure then ends the request with an error). A request ends
with ``timeout`` when its deadline passes and with ``cancelled`` when an ``AgentCancelFrame`` arrives, which
also stops the expert call. What happens between a request's arrival and its answer is the
request's workflow (:mod:`fleetmind.agent.workflows`; ``default_agent_loop.yaml`` unless another is given):
history, memory recall, routing, the expert call with failover, learning, and the final frame.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pipecat.frames.frames import CancelFrame, EndFrame, Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from fleetmind.agent.frames import (
    AgentCancelFrame,
    AgentErrorFrame,
    AgentOutputFrame,
    AgentRequestFrame,
)
from fleetmind.agent.workflows import DEFAULT_WORKFLOW
from fleetmind.agent.workflows.context import AgentServices
from fleetmind.agent.workflows.engine import WorkflowRunner
from fleetmind.agent.workflows.loader import Workflow, load_workflow
from fleetmind.agent.workflows.registry import default_registry
from fleetmind.contracts.errors import CodedError
from fleetmind.contracts.protocol import AgentRequest

log = logging.getLogger(__name__)

# How long a request task may take to wind down once cancelled (it only has to close an HTTP stream).
_CANCEL_WAIT_S = 5.0


class TwinService(FrameProcessor):
    """Routes chat requests to experts and streams their answers downstream as output frames."""

    def __init__(
        self,
        services: AgentServices,
        *,
        max_timeout_s: float = 300.0,
        workflow: Workflow | None = None,
        name: str | None = None,
    ) -> None:
        """``services`` are what the workflow's steps use: experts, their client, memory, router, tools, approvals."""
        if max_timeout_s <= 0:
            raise ValueError("max_timeout_s must be positive")
        super().__init__(name=name or "TwinService")
        self._max_timeout_s = max_timeout_s
        self._requests: dict[str, asyncio.Task[None]] = {}
        self._cancel_reasons: dict[str, str] = {}
        self.workflow = workflow or load_workflow(DEFAULT_WORKFLOW, default_registry())
        self._runner = WorkflowRunner(self.workflow, services)

    def apply_settings(self, *, default_expert: str, max_timeout_s: float) -> None:
        """Settings that may change while requests run (a loaded state); new requests see them."""
        if max_timeout_s <= 0:
            raise ValueError("max_timeout_s must be positive")
        self._max_timeout_s = max_timeout_s
        self._runner.services.default_expert = default_expert

    @property
    def in_flight(self) -> int:
        return len(self._requests)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AgentRequestFrame):
            await self._start(frame.request)
        elif isinstance(frame, AgentCancelFrame):
            await self._cancel(frame.request_id, frame.reason)
        else:
            if isinstance(frame, (EndFrame, CancelFrame)):
                # The pipeline is going away: nobody would read what these requests produce.
                for request_id in list(self._requests):
                    await self._cancel(request_id, "agent shutting down")
            await self.push_frame(frame, direction)

    async def _start(self, request: AgentRequest) -> None:
        if request.id in self._requests:
            # Output is matched to requests by id, so an answer here would land in the first request's stream.
            # AgentRuntime.submit refuses duplicates before they get here; anything else is a caller's bug.
            log.error(
                "dropping request %s: that id is already in flight",
                request.id,
                extra={"event": "duplicate_request", "request_id": request.id},
            )
            return
        self._requests[request.id] = self.create_task(self._serve(request), f"request-{request.id}")

    async def _cancel(self, request_id: str, reason: str) -> None:
        task = self._requests.get(request_id)
        if task is None or task.done():
            return
        self._cancel_reasons[request_id] = reason
        await self.cancel_task(task, _CANCEL_WAIT_S)

    async def _emit(self, frame: AgentOutputFrame) -> None:
        await self.push_frame(frame, FrameDirection.DOWNSTREAM)

    async def _serve(self, request: AgentRequest) -> None:
        """Answer one request, always ending with exactly one done or error frame."""
        timeout_s = min(request.timeout_s, self._max_timeout_s)
        started = time.monotonic()
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                await self._answer(request)
        except TimeoutError:
            if not deadline.expired():
                raise
            log.warning(
                "request %s timed out after %.1fs",
                request.id,
                timeout_s,
                extra={"event": "request_timeout", "request_id": request.id, "timeout_s": timeout_s},
            )
            await self._emit(
                AgentErrorFrame(request_id=request.id, code="timeout", message=f"no answer within {timeout_s:g}s")
            )
        except asyncio.CancelledError:
            reason = self._cancel_reasons.get(request.id, "cancelled")
            log.info(
                "request %s cancelled: %s",
                request.id,
                reason,
                extra={"event": "request_cancelled", "request_id": request.id, "reason": reason},
            )
            await self._emit(AgentErrorFrame(request_id=request.id, code="cancelled", message=reason))
            raise
        except CodedError as exc:
            await self._emit(AgentErrorFrame(request_id=request.id, code=exc.code, message=str(exc)))
        except Exception as exc:
            log.exception("request %s failed", request.id, extra={"event": "request_failed", "request_id": request.id})
            await self._emit(
                AgentErrorFrame(request_id=request.id, code="internal", message=f"internal error: {type(exc).__name__}")
            )
        finally:
            self._requests.pop(request.id, None)
            self._cancel_reasons.pop(request.id, None)
            log.debug(
                "request %s finished in %.3fs",
                request.id,
                time.monotonic() - started,
                extra={"event": "request_finished", "request_id": request.id},
            )

    async def _answer(self, request: AgentRequest) -> None:
        await self._runner.run(request, self._emit)
