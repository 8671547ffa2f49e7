"""The agent runtime: builds the pipecat pipeline, runs it, and turns each request into a stream of events.

The pipeline is ``[TwinService, AgentEventSinkProcessor]`` inside a pipecat ``PipelineWorker`` run by a
``WorkerRunner``. :meth:`AgentRuntime.submit` registers an outbox (:mod:`.outbox`) for the request's id with the
sink, queues an ``AgentRequestFrame`` into the pipeline and yields :class:`AgentEvent` objects from that outbox until
the ``done`` or ``error`` event. A consumer that stops early (its client went away) makes the runtime send an
``AgentCancelFrame``, which stops the expert call. Front ends (Mission Control's HTTP API, later voice) only
ever talk to this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pipecat.frames.frames import Frame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from fleetmind.agent import RuntimeNotRunningError
from fleetmind.agent.experts import ExpertDirectory, parse_experts
from fleetmind.agent.frames import AgentCancelFrame, AgentErrorFrame, AgentOutputFrame, AgentRequestFrame
from fleetmind.agent.outbox import Outbox
from fleetmind.agent.settings import AgentSettings
from fleetmind.agent.stats import AgentStats
from fleetmind.agent.twin import TwinService
from fleetmind.agent.workflows import resolve_workflow
from fleetmind.agent.workflows.context import AgentServices
from fleetmind.agent.workflows.loader import Workflow, load_workflow
from fleetmind.agent.workflows.registry import default_registry
from fleetmind.contracts.errors import AgentErrorCode
from fleetmind.contracts.protocol import AgentEvent, AgentRequest
from fleetmind.llm.chat import ExpertClient
from fleetmind.llm.loop_guard import LoopGuard
from fleetmind.memory.short_term import ConversationHistory

if TYPE_CHECKING:
    from fleetmind.agent.semantic import SemanticRouter
    from fleetmind.llm.embeddings import EmbeddingServer, LlamaEmbedder
    from fleetmind.memory.long_term import LongTermMemory
    from fleetmind.tools.approvals import ApprovalBroker
    from fleetmind.tools.runner import ToolRunner

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0


class AgentEventSinkProcessor(FrameProcessor):
    """The end of the pipeline: hands each output frame to the outbox of the request it belongs to."""

    def __init__(self, *, stats: AgentStats | None = None, name: str | None = None) -> None:
        # Direct mode: a frame is handled in the task that pushed it, not after two queue hops through this
        # processor's own tasks; what it does (put an event in a request's outbox) never blocks, and every token
        # of every answer passes here.
        super().__init__(name=name or "AgentEventSink", enable_direct_mode=True)
        self.stats = stats or AgentStats()
        self._outboxes: dict[str, Outbox] = {}

    def open(self, request_id: str) -> Outbox | None:
        """A fresh outbox for ``request_id``, or None when that id is already in flight."""
        if request_id in self._outboxes:
            return None
        outbox = self._outboxes[request_id] = Outbox()
        return outbox

    def close(self, request_id: str) -> None:
        self._outboxes.pop(request_id, None)

    def fail_all(self, code: AgentErrorCode, message: str) -> None:
        """End every open stream with an error (the pipeline is gone, nothing else will)."""
        for request_id, outbox in list(self._outboxes.items()):
            outbox.put(AgentEvent(type="error", id=request_id, code=code, message=message))

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, AgentOutputFrame):
            await self.push_frame(frame, direction)
            return
        event = frame.to_event()
        if event.type == "done":
            self.stats.record_done(event.id, event.expert, event.usage.completion_tokens if event.usage else 0)
        elif event.type == "error":
            self.stats.record_error(event.id, event.code or "internal", event.expert)
        outbox = self._outboxes.get(frame.request_id)
        if outbox is not None:
            outbox.put(event)


class AgentRuntime:
    """Owns the agent pipeline: ``start()``, then ``submit()`` requests (concurrently), then ``stop()``."""

    def __init__(
        self,
        *,
        settings: AgentSettings | None = None,
        directory: ExpertDirectory | None = None,
        client: ExpertClient | None = None,
        tools: ToolRunner | None = None,
        approvals: ApprovalBroker | None = None,
    ) -> None:
        self.settings = settings or AgentSettings()
        # The hands and the approval desk are shared with Mission Control, which shows and answers approvals.
        self.tools = tools
        self.approvals = approvals
        fixed = parse_experts(self.settings.experts) if self.settings.experts else None
        self.directory = directory or ExpertDirectory(
            fixed=fixed,
            ttl_s=self.settings.discovery_ttl_s,
            stale_s=self.settings.discovery_stale_s,
            cooldown_s=self.settings.failed_expert_cooldown_s,
        )
        self._own_client = client is None
        self._client_closed = False
        self._client = client or self._new_client()
        self.stats = AgentStats()
        # A bad workflow file (WorkflowLoadError, a ValueError) stops the process before it serves anything.
        self.workflow: Workflow = load_workflow(
            resolve_workflow(self.settings.workflow), default_registry(self.settings.plugin_modules)
        )
        self.history = ConversationHistory(
            max_messages=self.settings.history_max_messages,
            max_conversations=self.settings.history_max_conversations,
        )
        self.memory: LongTermMemory | None = None
        self.router: SemanticRouter | None = None
        self._embedder: LlamaEmbedder | None = None
        self._embedding_server: EmbeddingServer | None = None
        self._worker: PipelineWorker | None = None
        self._runner: WorkerRunner | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._sink: AgentEventSinkProcessor | None = None
        self._twin: TwinService | None = None
        self._started = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._warm: asyncio.Task[None] | None = None

    def _new_client(self) -> ExpertClient:
        return ExpertClient(
            connect_timeout_s=self.settings.expert_connect_timeout_s,
            read_timeout_s=self.settings.expert_read_timeout_s,
            loop_guard=LoopGuard if self.settings.loop_guard else None,
        )

    @property
    def running(self) -> bool:
        return self._started.is_set() and self._run_task is not None and not self._run_task.done()

    @property
    def in_flight(self) -> int:
        return self._twin.in_flight if self._twin else 0

    async def start(self) -> None:
        """Build and start the pipeline; returns once frames flow. Idempotent."""
        if self.running:
            return
        if self._client_closed:
            self._client = self._new_client()
            self._client_closed = False
        await self._start_memory()
        services = AgentServices(
            directory=self.directory,
            client=self._client,
            default_expert=self.settings.default_expert,
            memory=self.memory,
            history=self.history,
            router=self.router,
            embedder=self._embedder,
            tools=self.tools,
            approvals=self.approvals,
        )
        self._twin = TwinService(services, max_timeout_s=self.settings.request_timeout_s, workflow=self.workflow)
        self._sink = AgentEventSinkProcessor(stats=self.stats)
        self._worker = PipelineWorker(
            Pipeline([self._twin, self._sink]),
            name="fleetmind-agent",
            enable_rtvi=False,  # no client transport in this pipeline: requests come from the HTTP front end
            enable_turn_tracking=False,
            idle_timeout_secs=None,  # a quiet agent is not a finished one
            cancel_on_idle_timeout=False,
        )
        self._started.clear()

        @self._worker.event_handler("on_pipeline_started")
        async def _on_started(_worker: PipelineWorker, _frame: Frame) -> None:
            self._started.set()

        # Signals belong to the process that hosts us (uvicorn), which calls stop() on its way out.
        self._runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
        await self._runner.add_workers(self._worker)
        self._run_task = asyncio.create_task(self._runner.run(), name="fleetmind-agent-pipeline")
        started = asyncio.create_task(self._started.wait())
        done, _ = await asyncio.wait({started, self._run_task}, timeout=_START_TIMEOUT_S, return_when="FIRST_COMPLETED")
        if started not in done:
            started.cancel()
            await self.stop()
            raise RuntimeNotRunningError("the agent pipeline did not start")
        # The first request should not wait for the registry either: ask it now, off any request's path.
        self._warm = asyncio.create_task(self._warm_directory(), name="fleetmind-expert-warmup")
        log.info(
            "agent pipeline running (experts from %s)",
            self.directory.mode,
            extra={"event": "pipeline_started", "experts_mode": self.directory.mode},
        )

    async def _warm_directory(self) -> None:
        """The registry's answer, and the embeddings of the experts' and tools' descriptions (what requests are
        matched on by meaning), before the first request needs them."""
        try:
            experts = await self.directory.experts()
        except Exception:
            log.exception("expert discovery failed at start", extra={"event": "expert_discovery_failed"})
            return
        router = self.router
        if router is None:
            return
        from fleetmind.agent.workflows.tool_steps import tool_descriptions
        from fleetmind.llm import EmbeddingError

        described = {e.name: texts for e in experts if (texts := router.description_of(e)) is not None}
        if self.tools is not None:
            described |= {f"tool:{k}": v for k, v in tool_descriptions(list(self.tools.specs())).items()}
        try:
            await router.scores(np.zeros(router.embedder.dim, dtype=np.float32), described)
        except EmbeddingError as exc:
            log.warning("descriptions not embedded at start: %s", exc, extra={"event": "semantic_warmup_failed"})

    async def stop(self) -> None:
        """End the pipeline (in-flight requests end with ``cancelled``), release the HTTP pool. Idempotent."""
        warm, self._warm = self._warm, None
        if warm is not None and not warm.done():
            warm.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warm
        await self.directory.aclose()
        if self._run_task is not None and not self._run_task.done():
            assert self._worker is not None and self._runner is not None
            await self._worker.stop_when_done()
            try:
                await asyncio.wait_for(asyncio.shield(self._run_task), _STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("agent pipeline did not end in time; cancelling", extra={"event": "pipeline_stop_timeout"})
                await self._runner.cancel("stop timed out")
                await self._run_task
        self._started.clear()
        if self._sink is not None:
            self._sink.fail_all("unavailable", "the agent stopped")
        if self._own_client and not self._client_closed:
            await self._client.aclose()
            self._client_closed = True
        await self._stop_memory()
        log.info("agent pipeline stopped", extra={"event": "pipeline_stopped"})

    def memory_dir(self) -> Path:
        if self.settings.memory_dir is not None:
            return self.settings.memory_dir
        from fleetmind.config import get_settings

        return get_settings().state_dir / "agent" / "memory"

    async def _start_memory(self) -> None:
        """Long-term memory and routing by meaning, when an embedding server is configured (or autostarted)."""
        if self.memory is not None:
            return
        from fleetmind.agent.semantic import SemanticRouter
        from fleetmind.llm.embeddings import EmbeddingServer, LlamaEmbedder
        from fleetmind.memory.long_term import LongTermMemory

        url = self.settings.embeddings_url or None  # an empty value (a job variable left blank) means none
        if url is None and self.settings.embeddings_autostart:
            server = EmbeddingServer(self.memory_dir().parent / "models")
            url = await asyncio.to_thread(server.start)
            self._embedding_server = server
        if url is None:
            log.info(
                "no embeddings configured: long-term memory and routing by meaning are off",
                extra={"event": "memory_off"},
            )
            return
        self._embedder = LlamaEmbedder(url)
        self.memory = await asyncio.to_thread(LongTermMemory, self.memory_dir(), self._embedder)
        self.router = SemanticRouter(self._embedder)
        log.info(
            "long-term memory at %s (%d memories)",
            self.memory.directory,
            len(self.memory),
            extra={"event": "memory_ready", "memories": len(self.memory), "embeddings_url": url},
        )

    async def _stop_memory(self) -> None:
        if self.memory is not None:
            await asyncio.to_thread(self.memory.close)
            self.memory = None
        self.router = None
        if self._embedder is not None:
            await self._embedder.aclose()
            self._embedder = None
        if self._embedding_server is not None:
            await asyncio.to_thread(self._embedding_server.stop)
            self._embedding_server = None

    def apply_live_settings(self, *, default_expert: str | None = None, request_timeout_s: float | None = None) -> None:
        """Change the settings that take effect without a restart (used when a saved state is loaded)."""
        updates: dict[str, object] = {}
        if default_expert is not None:
            updates["default_expert"] = default_expert
        if request_timeout_s is not None:
            updates["request_timeout_s"] = float(request_timeout_s)
        self.settings = self.settings.model_copy(update=updates)
        if self._twin is not None:
            self._twin.apply_settings(
                default_expert=self.settings.default_expert, max_timeout_s=self.settings.request_timeout_s
            )

    async def export_state(self, *, owner: str | None = "*") -> bytes:
        """The agent's state (conversations, long-term memory, settings) as one file's bytes; with an ``owner``
        (an API key id) only that owner's conversations and memories (see :mod:`fleetmind.agent.state`)."""
        from fleetmind.agent.state import export_state

        return await asyncio.to_thread(export_state, self, owner=owner)

    async def import_state(self, data: bytes, *, owner: str | None = "*") -> None:
        """Replace conversations and long-term memory (and the live settings) with a saved state's; with an
        ``owner``, only that owner's conversations and memories (the settings stay)."""
        from fleetmind.agent.state import import_state

        await asyncio.to_thread(import_state, self, data, owner=owner)

    async def save_state(self, path: Path) -> None:
        """Write :meth:`export_state` to ``path`` atomically."""
        from fleetmind.atomic import write_atomic

        write_atomic(path, await self.export_state())

    async def load_state(self, path: Path) -> None:
        await self.import_state(await asyncio.to_thread(path.read_bytes))

    async def submit(self, request: AgentRequest, *, hold_s: float = 0.0) -> AsyncIterator[AgentEvent]:
        """Events for ``request``: deltas, then one done or error. Closing the iterator early cancels it.

        ``hold_s`` > 0: after a delta is given out, the deltas of the next ``hold_s`` come out as one (the answer's
        end comes out at once, and so does a delta after a quiet spell): a reader that writes each event to a
        socket pays that once per ``hold_s`` instead of once per token. 0: every event as it comes (voice).
        """
        if not self.running or self._sink is None or self._worker is None:
            raise RuntimeNotRunningError("the agent pipeline is not running")
        outbox = self._sink.open(request.id)
        if outbox is None:
            yield AgentErrorFrame(
                request_id=request.id, code="invalid_request", message="request id already in flight"
            ).to_event()
            return
        finished = False
        loop = asyncio.get_running_loop()
        try:
            await self._worker.queue_frame(AgentRequestFrame(request=request))
            held_until: float | None = None
            while True:
                if held_until is not None and held_until <= loop.time():
                    held_until = None
                await outbox.wait(held_until)
                batch = outbox.drain()
                if not batch:  # held, and nothing came: the next delta goes out as soon as it comes
                    held_until = None
                    continue
                for event in batch:
                    yield event
                    if event.type != "delta":
                        finished = True
                        return
                if hold_s > 0:
                    held_until = loop.time() + hold_s
        finally:
            self._sink.close(request.id)
            if not finished and self.running:
                # A task of its own: this may run inside a cancelled task, where awaiting is not reliable.
                task = asyncio.create_task(
                    self._worker.queue_frame(AgentCancelFrame(request_id=request.id, reason="client went away"))
                )
                self._background.add(task)
                task.add_done_callback(self._background.discard)
