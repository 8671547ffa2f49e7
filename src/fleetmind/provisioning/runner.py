"""The job runner: background ansible-playbook runs (via ansible-runner), a few at a time, never in a request.

Jobs arrive by id on an asyncio queue; ``concurrency`` workers take them in order, claim them in the store (so
a job runs at most once), check the node is in the inventory and run the playbook limited to that one node.
The command is an argument list built by ansible-runner (``--limit <hostname>``), never a shell string, and
the hostname was validated as RFC 1123 before it got here. Output lines and ansible events go to the event
bus; the final state, exit code, error and output tail go to the store, and a failure also to TODO.md.

``ansible-playbook`` is found on a PATH that starts with this interpreter's own ``bin`` folder, whatever the
caller's PATH. Every process of a run carries ``FLEETMIND_PROVISION_RUN=<run folder>`` in its environment, so
a cancelled run is stopped whole, and when the API is killed and restarts, :meth:`JobRunner.start` stops the
runs that outlived it before reporting them ``interrupted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from fleetmind.provisioning import events as ev
from fleetmind.provisioning.events import EventBus, JobEvent
from fleetmind.provisioning.inventory import Inventory
from fleetmind.provisioning.metrics import Metrics
from fleetmind.provisioning.schemas import Job
from fleetmind.provisioning.settings import ProvisionSettings
from fleetmind.provisioning.store import JobStore
from fleetmind.provisioning.todo import TodoWriter, clean

log = logging.getLogger(__name__)

_FAIL_EVENTS = ("runner_on_failed", "runner_on_unreachable")
# set in every run's environment, so all of a run's processes can be found again (even by a later API process)
RUN_MARKER = "FLEETMIND_PROVISION_RUN"


@dataclass
class RunResult:
    state: str
    rc: int | None
    error: str | None
    tail: list[str] = field(default_factory=list)


def ansible_env(run_dir: Path) -> dict[str, str]:
    """Environment additions for ansible-playbook: our venv first on PATH, no colours, the run's marker."""
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", os.defpath)
    return {
        "PATH": f"{bindir}{os.pathsep}{path}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PYTHONUNBUFFERED": "1",
        RUN_MARKER: str(run_dir),
    }


def run_processes(run_dir: Path) -> list[int]:
    """Pids of all processes of a run: ansible-playbook, its workers and local modules inherit the marker."""
    needle = f"{RUN_MARKER}={run_dir}\0".encode()
    pids: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def kill_run(run_dir: Path) -> int:
    """SIGKILL what is left of a run; returns how many processes were killed.

    ansible-runner's cancel kills only ansible-playbook's process group, and ansible-core's workers run in
    sessions of their own, so a cancelled or orphaned run's task would otherwise go on changing the node.
    """
    killed = 0
    for _ in range(5):  # a worker may fork between the scan and the kill: look again until nothing is left
        pids = run_processes(run_dir)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.05)
    return killed


def _summarise(event: dict[str, Any]) -> str:
    data = event.get("event_data") or {}
    res = data.get("res") or {}
    task = data.get("task") or "task"
    msg = res.get("msg") or res.get("stderr") or res.get("reason") or "failed"
    return clean(f"{task}: {msg}").strip()[:2000]


class JobRunner:
    """Runs queued jobs in the background; :meth:`submit` may be called from any thread."""

    def __init__(
        self,
        settings: ProvisionSettings,
        store: JobStore,
        inventory: Inventory,
        todo: TodoWriter,
        *,
        bus: EventBus | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.inventory = inventory
        self.todo = todo
        self.bus = bus or EventBus()
        self.metrics = metrics or Metrics()
        self._queue: asyncio.Queue[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._cancel = threading.Event()
        self.running: set[str] = set()
        self._idle = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> list[Job]:
        """Recover what the last process left (interrupted, queued jobs), start workers; return the former."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._cancel.clear()
        self._executor = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="provision-job")
        interrupted, queued = await asyncio.to_thread(self.store.recover)
        for job in interrupted:
            await asyncio.to_thread(self._stop_orphan, job)
            self.metrics.jobs_finished.labels("interrupted").inc()
            self.bus.publish(JobEvent(ev.FINISHED, job.id, job.hostname, {"state": job.state, "error": job.error}))
        for job in queued:
            self._queue.put_nowait(job.id)
        self.metrics.jobs_queued.set(self._queue.qsize())
        self._workers = [
            asyncio.create_task(self._work(), name=f"provision-worker-{i}") for i in range(self.settings.concurrency)
        ]
        return interrupted

    async def stop(self) -> None:
        """Cancel running playbooks (their jobs end ``interrupted``), stop workers; queued jobs stay so."""
        self._cancel.set()
        if self.running:
            # the workers record the cancelled runs; ansible-runner's poll loop notices within seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout=30)
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, job: Job) -> None:
        """Queue a job that the store has recorded as queued (thread-safe)."""
        if self._loop is None or self._queue is None:
            raise RuntimeError("the job runner is not started")
        self._loop.call_soon_threadsafe(self._enqueue, job)

    def _enqueue(self, job: Job) -> None:
        assert self._queue is not None
        self._queue.put_nowait(job.id)
        self.metrics.jobs_queued.set(self._queue.qsize())
        self.bus.publish(JobEvent(ev.QUEUED, job.id, job.hostname, {"trigger": job.trigger, "role": job.role}))

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    # -- one job -------------------------------------------------------------------------------------------
    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            job_id = await self._queue.get()
            self.metrics.jobs_queued.set(self._queue.qsize())
            try:
                await self._run(job_id)
            except Exception:
                log.exception("job %s crashed the worker", job_id, extra={"job_id": job_id})
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.store.finish, job_id, "failed", error="internal error in runner")
            finally:
                self._queue.task_done()

    async def _run(self, job_id: str) -> None:
        if self._cancel.is_set():
            return
        job = await asyncio.to_thread(self.store.claim, job_id)
        if job is None:
            return
        self.running.add(job.id)
        self._idle.clear()
        self.metrics.jobs_running.set(len(self.running))
        self.bus.publish(JobEvent(ev.STARTED, job.id, job.hostname, {"role": job.role, "ip": job.ip}))
        started = time.monotonic()
        try:
            entry = await asyncio.to_thread(self.inventory.get, job.hostname)
            if entry is None:
                result = RunResult("failed", None, f"node {job.hostname!r} is not in the inventory")
            else:
                assert self._loop is not None
                result = await self._loop.run_in_executor(self._executor, self._ansible, job)
            done = await asyncio.to_thread(
                self.store.finish, job.id, result.state, rc=result.rc, error=result.error, tail=result.tail
            )
            if done.state == "failed":
                await asyncio.to_thread(self.todo.append, done)
        finally:
            self.running.discard(job.id)
            self.metrics.jobs_running.set(len(self.running))
            if not self.running:
                self._idle.set()
        self.metrics.jobs_finished.labels(done.state).inc()
        self.metrics.job_seconds.observe(time.monotonic() - started)
        self.bus.publish(
            JobEvent(ev.FINISHED, job.id, job.hostname, {"state": done.state, "rc": done.rc, "error": done.error})
        )

    def _ansible(self, job: Job) -> RunResult:
        """Run the playbook for one node (in a worker thread)."""
        loop = self._loop
        assert loop is not None
        playbook = self.settings.playbook_path.resolve()
        run_dir = self.settings.runs_dir.resolve() / job.id
        run_dir.mkdir(parents=True, exist_ok=True)
        tail: deque[str] = deque(maxlen=self.settings.tail_lines)
        failures: list[str] = []
        processed: set[str] = set()

        def on_event(event: dict[str, Any]) -> bool:
            text = clean(str(event.get("stdout") or ""))
            for line in text.split("\n"):
                if line.strip():
                    tail.append(line)
            kind = str(event.get("event", ""))
            data = event.get("event_data") or {}
            if kind in _FAIL_EVENTS and not data.get("ignore_errors"):
                failures.append(_summarise(event))
            if kind == "playbook_on_stats":
                processed.update(data.get("processed") or {})
            if text.strip() or kind in _FAIL_EVENTS:
                payload = {
                    "ansible_event": kind,
                    "stdout": text,
                    "task": data.get("task"),
                    "host": data.get("host"),
                }
                self.bus.publish_threadsafe(loop, JobEvent(ev.OUTPUT, job.id, job.hostname, payload))
            return True

        try:
            runner = ansible_runner.run(
                private_data_dir=str(run_dir),
                project_dir=str(playbook.parent),
                playbook=playbook.name,
                inventory=str(self.inventory.path.resolve()),
                limit=job.hostname,
                ident="run",
                quiet=True,
                envvars=ansible_env(run_dir),
                event_handler=on_event,
                cancel_callback=self._cancel.is_set,
                timeout=self.settings.job_timeout_s,
            )
        except Exception as exc:
            return RunResult("failed", None, clean(f"ansible-runner could not start: {exc}")[:2000], list(tail))
        status, rc = str(runner.status), runner.rc
        # only a run cut short leaves processes behind (a daemon a finished play started on purpose stays)
        if status in ("canceled", "timeout") and (left := kill_run(run_dir)):
            log.warning("killed %d leftover processes of %s", left, job.id, extra={"job_id": job.id})
        if status == "canceled":
            return RunResult("interrupted", rc, "the provisioning API stopped during this run", list(tail))
        if status == "timeout":
            return RunResult("failed", rc, f"timed out after {self.settings.job_timeout_s}s", list(tail))
        if status == "successful" and rc == 0:
            if job.hostname not in processed:
                return RunResult("failed", rc, "the playbook finished without running on this node", list(tail))
            return RunResult("successful", rc, None, list(tail))
        if failures:
            error = failures[0] + (f" (and {len(failures) - 1} more failures)" if len(failures) > 1 else "")
        else:
            errors = [line for line in tail if "ERROR" in line]
            error = errors[-1].strip() if errors else f"ansible-playbook exited with code {rc}"
        return RunResult("failed", rc, error, list(tail))

    def _stop_orphan(self, job: Job) -> None:
        """Kill what an interrupted job's run left running when the API process died under it."""
        if killed := kill_run(self.settings.runs_dir.resolve() / job.id):
            log.warning("stopped %d orphaned processes of %s", killed, job.id, extra={"job_id": job.id})
