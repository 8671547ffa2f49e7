"""One allocation: a task group placed on this node — its processes, its services in the registry, its status.

It interpolates Nomad's run-time variables into each task, runs the tasks with :class:`TaskRunner`,
registers the group's (and tasks') services with their checks under Nomad's service IDs, restarts tasks
whose checks fail past ``check_restart``, kills siblings when a task fails, and reports itself in Nomad's
``Allocation`` shapes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetmind.cluster.durations import seconds
from fleetmind.cluster.embedded.checks import PASSING, WARNING
from fleetmind.cluster.embedded.index import IndexClock
from fleetmind.cluster.embedded.interpolate import interpolate, runtime_env
from fleetmind.cluster.embedded.registry import Check, CheckDef, Registry
from fleetmind.cluster.embedded.task_runner import DEAD, PENDING, RUNNING, LaunchSpec, TaskRunner

log = logging.getLogger(__name__)
DRIVERS = ("raw_exec",)


@dataclass(frozen=True)
class Placement:
    """Where an allocation lives: node identity, address, and the ports it was given."""

    node_id: str
    node_name: str
    address: str
    datacenter: str
    region: str
    logs_dir: Path
    data_dir: Path
    ports: dict[str, int]
    # the node's ``${meta.*}``, ``${attr.*}`` and ``${node.*}`` values, interpolated like Nomad's (never exported)
    node_vars: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _RestartRule:
    limit: int
    grace_s: float
    ignore_warnings: bool
    tasks: list[str]
    failures: int = 0


class AllocRunner:
    """Runs and reports one allocation."""

    def __init__(
        self,
        *,
        alloc_id: str,
        eval_id: str,
        job: dict[str, Any],
        group: dict[str, Any],
        index: int,
        placement: Placement,
        registry: Registry,
        clock: IndexClock,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.id, self.eval_id, self.job, self.group, self.index = alloc_id, eval_id, job, group, index
        self.placement, self.registry, self.clock, self._notify = placement, registry, clock, on_change
        create_index = clock.bump()
        self.name = f"{job['ID']}.{group['Name']}[{index}]"
        self.desired_status, self.desired_description = "run", ""
        self.create_index = self.modify_index = self.alloc_modify_index = create_index
        self.create_time = self.modify_time = time.time_ns()
        self.tasks: dict[str, TaskRunner] = {}
        self.service_ids: list[str] = []
        self._rules: dict[str, _RestartRule] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.alloc_dir = placement.data_dir / alloc_id / "alloc"

    # -- start --------------------------------------------------------------------------------------------
    def _env_for(self, task: dict[str, Any]) -> dict[str, str]:
        return runtime_env(
            job=self.job,
            group=self.group["Name"],
            task=task,
            alloc_id=self.id,
            alloc_index=self.index,
            alloc_dir=self.alloc_dir,
            task_dir=self.placement.data_dir / self.id / task["Name"] / "local",
            address=self.placement.address,
            ports=self.placement.ports,
            datacenter=self.placement.datacenter,
            region=self.placement.region,
        )

    def log_path(self, task: str, kind: str) -> Path:
        """Where task ``task`` of this allocation writes ``kind`` (stdout or stderr): one log per slot,
        ``<logs dir>/<job>.<group>[.<index>].<task>.<kind>.log``."""
        stem = f"{self.job['ID']}.{self.group['Name']}" + (f".{self.index}" if self.index else "")
        return self.placement.logs_dir / f"{stem}.{task}.{kind}.log"

    def _launch_spec(self, task: dict[str, Any]) -> LaunchSpec:
        nomad_env = self._env_for(task)
        names = {**self.placement.node_vars, **nomad_env}
        task_dir = Path(nomad_env["NOMAD_TASK_DIR"])
        task_dir.mkdir(parents=True, exist_ok=True)
        self.alloc_dir.mkdir(parents=True, exist_ok=True)
        (task_dir.parent / "secrets").mkdir(exist_ok=True)
        config = task.get("Config") or {}
        argv = [
            interpolate(str(config["command"]), names),
            *interpolate([str(a) for a in config.get("args", [])], names),
        ]
        # raw_exec tasks inherit the client's environment, then Nomad's variables, then the job's env block.
        env = {**os.environ, **nomad_env, **interpolate(dict(task.get("Env") or {}), names)}
        sig = getattr(signal, str(task.get("KillSignal") or "SIGTERM"), signal.SIGTERM)
        return LaunchSpec(
            argv=argv,
            env=env,
            cwd=task_dir,
            stdout=self.log_path(task["Name"], "stdout"),
            stderr=self.log_path(task["Name"], "stderr"),
            kill_timeout=seconds(int(task.get("KillTimeout") or 5 * 10**9)),
            kill_signal=sig,
            memory_max_mb=int((task.get("Resources") or {}).get("MemoryMaxMB") or 0),
        )

    def start(self) -> None:
        batch = self.job.get("Type") == "batch"
        for task in self.group["Tasks"]:
            runner = TaskRunner(
                task["Name"],
                self._launch_spec(task),
                restart_policy=self.group["RestartPolicy"],
                batch=batch,
                on_change=self._task_changed,
            )
            self.tasks[task["Name"]] = runner
        for runner in self.tasks.values():
            runner.start()
        self._register_services()
        self.registry.listeners.append(self._on_check)

    # -- services -----------------------------------------------------------------------------------------
    def _register_services(self) -> None:
        group_tasks = [t["Name"] for t in self.group["Tasks"]]
        entries = [(s, None, group_tasks) for s in self.group.get("Services") or []]
        for task in self.group["Tasks"]:
            entries += [(s, task["Name"], [task["Name"]]) for s in task.get("Services") or []]
        for service, task_name, tasks in entries:
            env = self._env_for(next(t for t in self.group["Tasks"] if t["Name"] == tasks[0]))
            service = interpolate(service, {**self.placement.node_vars, **env})
            label = service.get("PortLabel") or ""
            port = self._port(label)
            owner = f"group-{self.group['Name']}" if task_name is None else task_name
            sid = f"_nomad-task-{self.id}-{owner}-{service['Name']}-{label}"
            checks = []
            for check in service.get("Checks") or []:
                check_port = self._port(check.get("PortLabel") or label)
                address = f"{self.placement.address}:{check_port}"
                target = f"http://{address}{check.get('Path') or '/'}" if check["Type"] == "http" else address
                cid = "_nomad-check-" + hashlib.sha1(f"{sid}/{check['Name']}".encode()).hexdigest()
                checks.append(
                    CheckDef(
                        name=check["Name"],
                        kind=check["Type"],
                        target=target,
                        interval=seconds(check["Interval"]),
                        timeout=seconds(check["Timeout"]),
                        method=check.get("Method") or "GET",
                        check_id=cid,
                    )
                )
                rule = check.get("CheckRestart") or service.get("CheckRestart")
                if rule and int(rule.get("Limit") or 0) > 0:
                    self._rules[cid] = _RestartRule(
                        int(rule["Limit"]),
                        seconds(int(rule.get("Grace") or 0)),
                        bool(rule.get("IgnoreWarnings")),
                        tasks,
                    )
            self.registry.register_service(
                name=service["Name"],
                service_id=sid,
                address=self.placement.address,
                port=port,
                tags=service.get("Tags") or [],
                meta=service.get("Meta") or {},
                checks=checks,
            )
            self.service_ids.append(sid)

    def _port(self, label: str) -> int:
        if not label:
            return 0
        if label.isdigit():
            return int(label)
        return self.placement.ports[label]

    def _deregister_services(self) -> None:
        for sid in self.service_ids:
            self.registry.deregister_service(sid)
        self.service_ids = []
        if self._on_check in self.registry.listeners:
            self.registry.listeners.remove(self._on_check)

    def _on_check(self, check: Check) -> None:
        rule = self._rules.get(check.id)
        if rule is None or self.desired_status != "run":
            return
        runners = [self.tasks[t] for t in rule.tasks if t in self.tasks]
        now = time.monotonic()
        in_grace = any(
            r.state.state != RUNNING or r.started_monotonic is None or now - r.started_monotonic < rule.grace_s
            for r in runners
        )
        healthy = check.status == PASSING or (check.status == WARNING and rule.ignore_warnings)
        if in_grace or healthy:
            rule.failures = 0
            return
        rule.failures += 1
        if rule.failures >= rule.limit:
            rule.failures = 0
            reason = f"healthcheck: check {check.name!r} unhealthy"
            log.warning("alloc %s: %s; restarting %s", self.name, reason, ", ".join(rule.tasks))
            for runner in runners:
                runner.request_restart(reason)

    # -- state --------------------------------------------------------------------------------------------
    def on_change(self) -> None:
        self.modify_index = self.clock.bump()
        self.modify_time = time.time_ns()
        self._notify()

    def _task_changed(self) -> None:
        failed = [r for r in self.tasks.values() if r.state.state == DEAD and r.state.failed]
        if failed and self.desired_status == "run":
            for runner in self.tasks.values():
                if runner.state.state != DEAD:
                    runner.event("Sibling Task Failed", f"Task's sibling {failed[0].name!r} failed")
                    self._spawn(runner.kill(f"sibling {failed[0].name} failed"))
        if self.tasks and all(r.state.state == DEAD for r in self.tasks.values()) and self.service_ids:
            self._deregister_services()
        self.on_change()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self, description: str = "alloc is being stopped") -> None:
        """Deregister the services first (so no traffic goes to a stopping task), then kill every task."""
        if self.desired_status != "stop":
            self.desired_status, self.desired_description = "stop", description
            self.alloc_modify_index = self.clock.index + 1
            self.on_change()
        self._deregister_services()
        await asyncio.gather(*(r.kill(description) for r in self.tasks.values()))
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    @property
    def client_status(self) -> str:
        states = [r.state for r in self.tasks.values()]
        if not states:
            return "pending"
        if any(s.state == DEAD and s.failed for s in states):
            return "failed"
        if any(s.state == RUNNING for s in states):
            return "running"
        if any(s.state == PENDING for s in states):
            return "pending"
        return "complete"

    @property
    def terminal(self) -> bool:
        return self.client_status in ("complete", "failed")

    def _allocated_resources(self) -> dict[str, Any]:
        ports = [
            {"Label": label, "Value": port, "To": 0, "HostIP": self.placement.address}
            for label, port in sorted(self.placement.ports.items())
        ]
        tasks = {
            t["Name"]: {
                "Cpu": {"CpuShares": int((t.get("Resources") or {}).get("CPU", 100))},
                "Memory": {"MemoryMB": int((t.get("Resources") or {}).get("MemoryMB", 300))},
            }
            for t in self.group["Tasks"]
        }
        network = {
            "Mode": "host",
            "IP": self.placement.address,
            "DynamicPorts": [{"Label": p["Label"], "Value": p["Value"]} for p in ports],
        }
        return {"Tasks": tasks, "Shared": {"Ports": ports, "Networks": [network], "DiskMB": 0}}

    def stub(self) -> dict[str, Any]:
        """Nomad's ``AllocationListStub``."""
        return {
            "ID": self.id,
            "EvalID": self.eval_id,
            "Name": self.name,
            "Namespace": str(self.job.get("Namespace") or "default"),
            "NodeID": self.placement.node_id,
            "NodeName": self.placement.node_name,
            "JobID": self.job["ID"],
            "JobType": self.job.get("Type", "service"),
            "JobVersion": int(self.job.get("Version", 0)),
            "TaskGroup": self.group["Name"],
            "AllocatedResources": self._allocated_resources(),
            "DesiredStatus": self.desired_status,
            "DesiredDescription": self.desired_description,
            "ClientStatus": self.client_status,
            "ClientDescription": self._client_description(),
            "TaskStates": {name: r.state.to_api() for name, r in self.tasks.items()},
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
            "CreateTime": self.create_time,
            "ModifyTime": self.modify_time,
        }

    def _client_description(self) -> str:
        return {
            "pending": "No tasks have started",
            "running": "Tasks are running",
            "complete": "All tasks have completed",
            "failed": "Failed tasks",
        }[self.client_status]

    def to_api(self) -> dict[str, Any]:
        """Nomad's full ``Allocation`` (with the Job as it was placed)."""
        out = self.stub()
        out.pop("JobType")
        out.pop("JobVersion")
        out["Job"] = self.job
        out["AllocModifyIndex"] = self.alloc_modify_index
        return out
