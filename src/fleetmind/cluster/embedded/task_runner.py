"""Run one task of an allocation as a local process: start, watch, restart per policy, stop; keep its
TaskState.

The state and events follow Nomad's ``TaskState`` (State pending|running|dead, Failed, Restarts, StartedAt,
FinishedAt, LastRestart, Events with Nomad's event types and display messages), so ``/v1/allocation/:id``
reads the same as on a real client. A restart can be asked for from outside (``check_restart``); it goes
through the same policy as a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetmind.cluster.durations import format_duration
from fleetmind.cluster.embedded import memlimit, process
from fleetmind.cluster.embedded.restarts import RestartTracker
from fleetmind.exits import describe_exit, tail_lines

log = logging.getLogger(__name__)
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time, what Nomad reports for "never"
PENDING, RUNNING, DEAD = "pending", "running", "dead"
# what goes into an event's Details
_DETAILS = ("exit_code", "signal", "restart_reason", "kill_reason", "cause", "oom_killed", "memory_limit")


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class TaskState:
    state: str = PENDING
    failed: bool = False
    restarts: int = 0
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    last_restart: str = ZERO_TIME
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        return {
            "State": self.state,
            "Failed": self.failed,
            "Restarts": self.restarts,
            "StartedAt": self.started_at,
            "FinishedAt": self.finished_at,
            "LastRestart": self.last_restart,
            "Events": [dict(e) for e in self.events],
        }


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start the task's process (already interpolated)."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    stdout: Path
    stderr: Path
    kill_timeout: float
    kill_signal: int = signal.SIGTERM
    memory_max_mb: int = 0  # a hard limit (Resources.MemoryMaxMB), enforced with a memory cgroup; 0: none


class TaskRunner:
    """Owns one task's process across restarts."""

    MAX_EVENTS = 10  # Nomad keeps the last 10 events per task

    def __init__(
        self,
        name: str,
        launch: LaunchSpec,
        *,
        restart_policy: dict[str, Any],
        batch: bool = False,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.launch = launch
        self.tracker = RestartTracker(restart_policy)
        self.batch = batch
        self.state = TaskState()
        self.on_change = on_change
        self.proc: asyncio.subprocess.Process | None = None
        self.started_monotonic: float | None = None
        self._restart_reason: str | None = None
        self._kill_reason: str | None = None
        self._wake = asyncio.Event()
        self._main: asyncio.Task[None] | None = None

    # -- events -------------------------------------------------------------------------------------------
    def event(self, type_: str, message: str, **extra: Any) -> None:
        details = {k: str(v) for k, v in extra.items() if k in _DETAILS}
        event: dict[str, Any] = {
            "Type": type_,
            "Time": time.time_ns(),
            "DisplayMessage": message,
            "Message": message,
            "Details": details,
        }
        if "exit_code" in extra:
            event["ExitCode"] = int(extra["exit_code"])
        if "signal" in extra:
            event["Signal"] = int(extra["signal"])
        if "restart_reason" in extra:
            event["RestartReason"] = str(extra["restart_reason"])
        if "start_delay" in extra:
            event["StartDelay"] = int(extra["start_delay"])
        if "kill_timeout" in extra:
            event["KillTimeout"] = int(extra["kill_timeout"])
        if "kill_reason" in extra:
            event["KillReason"] = str(extra["kill_reason"])
        if extra.get("fails_task"):
            event["FailsTask"] = True
        if "driver_error" in extra:
            event["DriverError"] = str(extra["driver_error"])
        self.state.events = [*self.state.events, event][-self.MAX_EVENTS :]
        self.on_change()

    # -- control ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.event("Received", "Task received by client")
        self._main = asyncio.get_running_loop().create_task(self._run(), name=f"task {self.name}")

    def request_restart(self, reason: str) -> None:
        """Ask for a restart (e.g. failing health check); ignored unless the task is running."""
        if self.state.state == RUNNING and self._restart_reason is None and self._kill_reason is None:
            self._restart_reason = reason
            self._wake.set()

    async def kill(self, reason: str = "") -> None:
        """Stop the task for good (SIGTERM the group, KillTimeout, SIGKILL) and wait until it is dead."""
        if self._kill_reason is None:
            self._kill_reason = reason or "Task being stopped"
        self._wake.set()
        if self._main is None:
            self._finish(failed=False)
            return
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._main)

    @property
    def done(self) -> bool:
        return self.state.state == DEAD

    # -- the loop -----------------------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            self.event("Task Setup", "Building Task Directory")
            while self._kill_reason is None:
                exit_code, _signal, restart_reason = await self._run_once()
                if self._kill_reason is not None:
                    break
                if exit_code == 0 and self.batch and restart_reason is None:
                    self._finish(failed=False)
                    return
                decision = self.tracker.next()
                if not decision.restart:
                    self.event("Not Restarting", decision.reason, fails_task=True, restart_reason=decision.reason)
                    self._finish(failed=True)
                    return
                reason = restart_reason or decision.reason
                self.state.state = PENDING
                self.event(
                    "Restarting",
                    f"Task restarting in {format_duration(decision.delay_ns)}",
                    restart_reason=reason,
                    start_delay=decision.delay_ns,
                )
                if await self._sleep_unless_killed(decision.delay_ns / 1e9):
                    break
                self.state.restarts += 1
                self.state.last_restart = _now_rfc3339()
            self._finish(failed=False, killed=True)
        except asyncio.CancelledError:
            await self._ensure_stopped()
            self._finish(failed=False, killed=True)
            raise
        except Exception as exc:  # a bug here must not leave the process running
            log.exception("task %s runner failed", self.name)
            await self._ensure_stopped()
            self.event("Driver Failure", f"embedded runner error: {exc}", driver_error=exc, fails_task=True)
            self._finish(failed=True)

    async def _run_once(self) -> tuple[int, int, str | None]:
        """Start the process and wait for it to end; returns (exit code, signal, restart reason if asked)."""
        spec = self.launch
        argv = list(spec.argv)
        cgroup = memlimit.create(self.name, spec.memory_max_mb) if spec.memory_max_mb > 0 else None
        if cgroup is not None:
            argv = cgroup.wrap(argv)
        elif spec.memory_max_mb > 0:
            self._log_cause(f"task {self.name}: memory limit {spec.memory_max_mb} MB not enforced (no memory cgroup)")
        try:
            self.proc = await process.spawn(argv, env=spec.env, cwd=spec.cwd, stdout=spec.stdout, stderr=spec.stderr)
        except OSError as exc:
            if cgroup is not None:
                cgroup.remove()
            self.event("Driver Failure", f"failed to launch command with executor: {exc}", driver_error=exc)
            return -1, 0, None
        try:
            return await self._watch(spec, cgroup)
        finally:
            if cgroup is not None:
                cgroup.remove()

    async def _watch(self, spec: LaunchSpec, cgroup: memlimit.MemoryCgroup | None) -> tuple[int, int, str | None]:
        assert self.proc is not None
        self.state.state = RUNNING
        self.state.started_at = _now_rfc3339()
        self.started_monotonic = time.monotonic()
        self.event("Started", "Task started by client")
        waiter = asyncio.ensure_future(self.proc.wait())
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({waiter, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
        restart_reason = None
        if not waiter.done():
            if self._kill_reason is not None:
                self.event(
                    "Killing",
                    f"Sent interrupt. Waiting {format_duration(int(spec.kill_timeout * 1e9))} before force killing",
                    kill_reason=self._kill_reason,
                    kill_timeout=int(spec.kill_timeout * 1e9),
                )
            else:
                restart_reason = self._restart_reason
                self.event("Restart Signaled", str(restart_reason), restart_reason=restart_reason)
            await process.stop_group(self.proc, grace_s=spec.kill_timeout, sig=spec.kill_signal)
        else:
            process.reap_group(self.proc)
        self._wake.clear()
        self._restart_reason = None
        code = self.proc.returncode if self.proc.returncode is not None else -1
        # Like Nomad's executor: a signalled process reports 128+signal as its exit code.
        exit_code, sig = (128 - code, -code) if code < 0 else (code, 0)
        if self._kill_reason is not None:
            self.event("Killed", "Task successfully killed")
        else:
            # Nomad's event carries only the numbers; the cause in words goes beside them (Details["cause"]) and
            # into the task's own log, where a user reading it looks first.
            tail = "\n".join(x for x in tail_lines(spec.stderr).splitlines() if not x.startswith("[fleetmind]"))
            oom = cgroup is not None and cgroup.oom_kills() > 0
            cause = describe_exit(exit_code, sig, tail)
            extra: dict[str, Any] = {}
            if oom and cgroup is not None:
                cause = f"killed by the out-of-memory killer: over its memory limit of {cgroup.limit_mb} MB ({cause})"
                extra = {"oom_killed": "true", "memory_limit": cgroup.limit_mb}
            self.event(
                "Terminated",
                f"Exit Code: {exit_code}"
                + (f", Signal: {sig}" if sig else "")
                + (', Exit Message: "OOM Killed"' if oom else ""),
                exit_code=exit_code,
                signal=sig,
                cause=cause,
                **extra,
            )
            self._log_cause(f"task {self.name} {cause}")
        return exit_code, sig, restart_reason

    def _log_cause(self, line: str) -> None:
        try:
            with self.launch.stderr.open("a", encoding="utf-8") as fh:
                fh.write(f"\n[fleetmind] {_now_rfc3339()} {line}\n")
        except OSError as exc:
            log.warning("cannot write to %s: %s", self.launch.stderr, exc)
        log.warning("%s", line)

    async def _sleep_unless_killed(self, seconds: float) -> bool:
        """Wait out a restart delay; True if a kill came in meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()
        return self._kill_reason is not None

    async def _ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            await process.stop_group(self.proc, grace_s=self.launch.kill_timeout, sig=self.launch.kill_signal)

    def _finish(self, *, failed: bool, killed: bool = False) -> None:
        if self.state.state == DEAD:
            return
        self.state.state = DEAD
        self.state.failed = failed
        self.state.finished_at = _now_rfc3339()
        self.on_change()
