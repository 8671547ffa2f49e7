"""Cluster tools over :class:`~fleetmind.cluster.client.ClusterClient` (Nomad and Consul HTTP APIs, so the same on
the embedded orchestrator and on a real cluster): ``cluster_status``, ``job_logs`` (read), ``restart_job`` and
``scale_job`` (change running services, so they need approval).

A restart re-submits the job with a changed ``Meta.fleetmind_restart`` — the documented way to force Nomad to
replace allocations — and a scale re-submits it with a new group ``Count``. Logs come from Nomad's
``/v1/client/fs/logs`` when the agent serves it, else from the embedded orchestrator's log folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from fleetmind.cluster.client import ClusterClient
from fleetmind.cluster.errors import ClusterError
from fleetmind.tools.base import ToolCall, ToolContext, tool
from fleetmind.tools.errors import ToolExecutionError

READ_ONLY_FIELDS = (
    "Status",
    "StatusDescription",
    "Stop",
    "Version",
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
    "SubmitTime",
    "Stable",
)
JOB_ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[A-Za-z0-9_.\-]+$"}


def _client(ctx: ToolContext) -> ClusterClient:
    return ClusterClient(consul_addr=ctx.consul_addr, nomad_addr=ctx.nomad_addr)


def _cluster_call(ctx: ToolContext, fn: Any) -> Any:
    try:
        with _client(ctx) as client:
            return fn(client)
    except ClusterError as exc:
        raise ToolExecutionError(str(exc)) from None


def _alloc_summary(a: dict[str, Any]) -> dict[str, Any]:
    states = a.get("TaskStates") or {}
    return {
        "id": a["ID"],
        "group": a.get("TaskGroup"),
        "client_status": a.get("ClientStatus"),
        "desired_status": a.get("DesiredStatus"),
        "restarts": {t: s.get("Restarts", 0) for t, s in states.items()},
        "failed": {t: bool(s.get("Failed")) for t, s in states.items()},
    }


@tool(
    "cluster_status",
    "Jobs on the cluster with their status and allocations (where, running or not, restarts).",
    {"type": "object", "properties": {"job_id": JOB_ID}},
    timeout_s=30.0,
)
def cluster_status(call: ToolCall) -> dict[str, Any]:
    def status(client: ClusterClient) -> dict[str, Any]:
        stubs = [client.job(call.args["job_id"])] if "job_id" in call.args else client.jobs()
        jobs = []
        for stub in stubs:
            allocs = client.job_allocations(stub["ID"])
            jobs.append(
                {
                    "id": stub["ID"],
                    "type": stub.get("Type"),
                    "status": stub.get("Status"),
                    "allocations": [_alloc_summary(a) for a in allocs],
                }
            )
        return {
            "nomad": client.nomad_addr,
            "jobs": jobs,
            "running": sum(1 for j in jobs for a in j["allocations"] if a["client_status"] == "running"),
        }

    return dict(_cluster_call(call.context, status))


def _tail_lines(data: str, lines: int) -> str:
    return "\n".join(data.splitlines()[-lines:])


@tool(
    "job_logs",
    "The last lines of a job task's stdout or stderr.",
    {
        "type": "object",
        "properties": {
            "job_id": JOB_ID,
            "task": {"type": "string", "maxLength": 128},
            "type": {"enum": ["stdout", "stderr"], "default": "stdout"},
            "lines": {"type": "integer", "minimum": 1, "maximum": 2000, "default": 50},
        },
        "required": ["job_id"],
    },
    timeout_s=30.0,
)
def job_logs(call: ToolCall) -> dict[str, Any]:
    job_id, kind, lines = call.args["job_id"], call.args.get("type", "stdout"), int(call.args.get("lines", 50))

    def fetch(client: ClusterClient) -> dict[str, Any]:
        job = client.job(job_id)
        allocs = client.job_allocations(job_id)
        groups = {g["Name"]: [t["Name"] for t in g.get("Tasks", [])] for g in job.get("TaskGroups", [])}
        tasks = [(g, t) for g, ts in groups.items() for t in ts if t == call.args.get("task", t)]
        if not tasks:
            raise ToolExecutionError(f"job {job_id} has no task {call.args.get('task')!r}")
        out = []
        for group, task in tasks:
            alloc = next((a for a in allocs if a.get("TaskGroup") == group), None)
            text, source = _nomad_logs(client.nomad_addr, client.nomad_token, alloc, task, kind)
            if text is None:
                text, source = _local_logs(call.context.cluster_logs_dir, job_id, group, task, kind)
            out.append(
                {
                    "group": group,
                    "task": task,
                    "alloc": alloc["ID"] if alloc else None,
                    "source": source,
                    "text": _tail_lines(text or "", lines),
                }
            )
        return {"job_id": job_id, "type": kind, "logs": out}

    return dict(_cluster_call(call.context, fetch))


def _nomad_logs(
    addr: str, token: str | None, alloc: dict[str, Any] | None, task: str, kind: str
) -> tuple[str | None, str]:
    if alloc is None:
        return None, "none"
    try:
        r = httpx.get(
            f"{addr.rstrip('/')}/v1/client/fs/logs/{alloc['ID']}",
            timeout=10,
            trust_env=False,
            headers={"X-Nomad-Token": token} if token else {},
            params={"task": task, "type": kind, "plain": "true", "origin": "end", "offset": 65536},
        )
    except httpx.HTTPError:
        return None, "none"
    return (r.text, "nomad") if r.status_code == 200 else (None, "none")


def _local_logs(folder: Path | None, job_id: str, group: str, task: str, kind: str) -> tuple[str | None, str]:
    if folder is None:
        raise ToolExecutionError("the orchestrator does not serve logs and no cluster_logs_dir is configured")
    files = sorted(folder.glob(f"{job_id}.{group}*.{task}.{kind}.log"))
    if not files:
        return "", "none"
    with files[0].open("rb") as fh:
        fh.seek(max(files[0].stat().st_size - 65536, 0))
        return fh.read().decode(errors="replace"), str(files[0])


def _resubmit(client: ClusterClient, job: dict[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in job.items() if k not in READ_ONLY_FIELDS}
    return client.register_job(clean)


@tool(
    "restart_job",
    "Restart every allocation of a job (the job is re-submitted so the orchestrator replaces them).",
    {"type": "object", "properties": {"job_id": JOB_ID}, "required": ["job_id"]},
    risk="approval",
    timeout_s=60.0,
)
def restart_job(call: ToolCall) -> dict[str, Any]:
    def restart(client: ClusterClient) -> dict[str, Any]:
        job = client.job(call.args["job_id"])
        before = [a["ID"] for a in client.job_allocations(job["ID"]) if a.get("DesiredStatus") == "run"]
        job["Meta"] = {**(job.get("Meta") or {}), "fleetmind_restart": str(time.time_ns())}
        response = _resubmit(client, job)
        return {"job_id": job["ID"], "eval_id": response.get("EvalID"), "replaced_allocations": before}

    return dict(_cluster_call(call.context, restart))


@tool(
    "scale_job",
    "Set how many instances of a job's task group run.",
    {
        "type": "object",
        "properties": {
            "job_id": JOB_ID,
            "group": {"type": "string", "maxLength": 128},
            "count": {"type": "integer", "minimum": 0, "maximum": 64},
        },
        "required": ["job_id", "count"],
    },
    risk="approval",
    timeout_s=60.0,
)
def scale_job(call: ToolCall) -> dict[str, Any]:
    def scale(client: ClusterClient) -> dict[str, Any]:
        job = client.job(call.args["job_id"])
        groups = job.get("TaskGroups") or []
        name = call.args.get("group") or (groups[0]["Name"] if len(groups) == 1 else None)
        group = next((g for g in groups if g["Name"] == name), None)
        if group is None:
            raise ToolExecutionError(f"job {job['ID']} has groups {[g['Name'] for g in groups]}: name one")
        before = int(group.get("Count", 1))
        group["Count"] = int(call.args["count"])
        response = _resubmit(client, job)
        return {
            "job_id": job["ID"],
            "group": name,
            "from": before,
            "to": group["Count"],
            "eval_id": response.get("EvalID"),
        }

    return dict(_cluster_call(call.context, scale))
