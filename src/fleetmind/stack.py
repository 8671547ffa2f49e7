"""The embedded default stack: which jobs ``fleetmind up`` runs on this machine, with which variables.

It starts the embedded orchestrator and registry, submits the job specs from ``jobs/`` through the same Nomad API
client a cluster would get, waits until every service passes its health check (showing progress), and on Ctrl-C or
SIGTERM stops every task so that no process is left behind. Every host, port, size and folder comes from
:class:`fleetmind.stack_settings.StackSettings`; the job files from its ``jobs_dir`` (``FLEETMIND_JOBS_DIR`` or the
specs installed with fleetmind).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleetmind.agent.profiles import ProfileError, profile
from fleetmind.cluster.client import ClusterClient
from fleetmind.cluster.embedded import EmbeddedCluster
from fleetmind.cluster.jobspec import load_job
from fleetmind.cluster.token import ensure_token
from fleetmind.contracts.names import AGENT_SERVICE, GATEWAY_SERVICE
from fleetmind.llm import LlmError, binaries
from fleetmind.llm.models import DEFAULT_MODEL, resolve
from fleetmind.security.service import ensure_secret, proof
from fleetmind.stack_settings import JobsFolderMissing, StackSettings

# The services `up` waits for, in the order they come up.
EMBEDDINGS_SERVICE = "embeddings"
EXPERT_SERVICE = "expert-general"
CODING_SERVICE = "expert-coding"
SERVICES = (EMBEDDINGS_SERVICE, EXPERT_SERVICE, CODING_SERVICE, AGENT_SERVICE, GATEWAY_SERVICE)
# Abnormal ends of one task (of the last 10 events) that make `up` give up on it as crash-looping.
CRASH_LOOP = 3

# Each expert of the embedded stack: the same job file with its own name, port, system prompt and generation defaults
# (its profile in fleetmind/agent/experts.yaml).


class StackError(RuntimeError):
    """The stack could not start; the message says why and what to do."""


def jobs_dir(cfg: StackSettings) -> Path:
    try:
        return cfg.jobs_dir
    except JobsFolderMissing as exc:
        raise StackError(str(exc)) from None


def plan(cfg: StackSettings, cluster_vars: dict[str, Any]) -> list[dict[str, Any]]:
    """The Nomad jobs (API JSON) of the embedded stack. Raises StackError/LlmError with the fix on a missing part."""
    from fleetmind.llm.gguf_convert import ensure_gguf

    model = resolve(cfg.model or DEFAULT_MODEL, cache_dir=cfg.state_dir)
    # A model of the user's may not fit this machine: the packaged one is then the light fallback (design: graceful
    # LLM failover), so the expert still starts.
    try:
        light = resolve(DEFAULT_MODEL)
    except LlmError:
        light = model
    fallback = "" if light == model else str(light)
    embedder_model = ensure_gguf(cfg.state_dir / "models")
    llama_server = str(binaries.llama_server())
    # How the services prove who they are (security/service.py): one secret for the stack, made on first start;
    # the agent and the experts register with a proof of it, which the gateway and the agent check.
    secret = ensure_secret(cfg.state_dir)
    common = {
        "python": sys.executable,
        "host": cfg.host,
        "state_dir": str(cfg.state_dir),
        "service_secret": secret,
        **cluster_vars,
    }
    folder = jobs_dir(cfg)
    jobs = [
        load_job(
            folder / "llama-embedder.nomad.hcl",
            {
                "llama_server": llama_server,
                "model": str(embedder_model),
                "host": cfg.host,
                "port": cfg.embeddings_port,
                # a query embeds before the expert is asked, so nothing of this request competes with it: two
                # threads take a short query from ~8 to ~5.5 ms on two cores (more buys nothing at this size)
                "threads": min(2, cfg.llama_threads),
                "service_secret": secret,
            },
        )
    ]
    experts = (("general", cfg.expert_port), ("coding", cfg.coding_port))
    try:
        profiles = {name: profile(name) for name, _ in experts}
    except ProfileError as exc:
        raise StackError(str(exc)) from None
    for name, port in experts:
        job = load_job(
            folder / "llama-expert.nomad.hcl",
            {
                "llama_server": llama_server,
                "model": str(model),
                "expert_name": name,
                "system_prompt": profiles[name].prompt,
                "generation": profiles[name].generation.meta(),
                "host": cfg.host,
                "port": port,
                "threads": cfg.llama_threads,
                "ctx_size": cfg.ctx_size,
                "fallback_model": fallback,
                "python": sys.executable,
                "service_secret": secret,
                "service_proof": proof(secret, f"expert-{name}", port),
            },
        )
        if name != "general":
            # One job file, one job per expert: Nomad job ids must differ (`nomad job run` would need a copy).
            job["ID"] = job["Name"] = f"{job['ID']}-{name}"
        jobs.append(job)
    embeddings_url = cfg.embeddings_url
    jobs.append(
        load_job(
            folder / "pipecatapp.nomad.hcl",
            {
                **common,
                "port": cfg.ui_port,
                "embeddings_url": embeddings_url,
                "service_proof": proof(secret, AGENT_SERVICE, cfg.ui_port),
            },
        )
    )
    # One machine: the agent's process serves the gateway too (one process and one HTTP hop fewer on every request
    # and every token); the gateway's port and its registration come from its own job file, as on a cluster.
    gateway = load_job(folder / "moe_gateway.nomad.hcl", {**common, "port": cfg.gateway_port})
    jobs[-1] = gateway_in_agent(jobs[-1], gateway)
    # The self-healing supervisor watches every job above through the same APIs (it needs no service of its own to
    # be healthy before the stack is ready: `up` does not wait for it).
    supervisor_vars = {k: v for k, v in common.items() if k not in ("host", "state_dir")}
    supervisor_vars |= {"state_dir": str(cfg.state_dir), "logs_dir": str(cfg.logs_dir), "fallback_model": str(light)}
    # its audit goes to Mission Control's self-healing panel (the agent process), with the service credential
    supervisor_vars["events_url"] = f"http://{cfg.host}:{cfg.ui_port}/api/events"
    jobs.append(load_job(folder / "supervisor.nomad.hcl", {**supervisor_vars, "host": cfg.host}))
    return jobs


def gateway_in_agent(agent: dict[str, Any], gateway: dict[str, Any]) -> dict[str, Any]:
    """The agent job serving the gateway from its own process (``agent_process --gateway-port``): the gateway job's
    port (as label ``gateway``) and its service registration and health check move into the agent's group."""
    agent = copy.deepcopy(agent)
    group, gateway_group = agent["TaskGroups"][0], gateway["TaskGroups"][0]
    port = gateway_group["Networks"][0]["ReservedPorts"][0]
    group["Networks"][0]["ReservedPorts"].append({**port, "Label": "gateway"})
    group["Services"].extend({**service, "PortLabel": "gateway"} for service in gateway_group["Services"])
    task = group["Tasks"][0]
    task["Config"]["args"] = [*task["Config"]["args"], "--gateway-port", "${NOMAD_PORT_gateway}"]
    return agent


def _services_of(client: ClusterClient, job_id: str) -> list[str]:
    """The services the job registers (what `up` waits for), by name."""
    groups = client.job(job_id).get("TaskGroups") or []
    return [svc["Name"] for group in groups for svc in (group.get("Services") or [])]


def crashed_tasks(client: ClusterClient, logs: Path) -> list[str]:
    """Tasks that cannot come up: dead after their restart budget, killed by a signal no restart fixes (SIGILL), or
    crash-looping (three abnormal ends). Each as one line: the services it registers, job, task, cause, its log."""
    from fleetmind.cluster.causes import task_cause

    found = []
    for job in client.jobs():
        for alloc in client.job_allocations(job["ID"]):
            for task, state in (alloc.get("TaskStates") or {}).items():
                cause = task_cause(state)
                if cause is None or not (cause.fatal or cause.crashes >= CRASH_LOOP):
                    continue
                log_files = sorted(logs.glob(f"{job['ID']}.*.{task}.stderr.log"))
                where = str(log_files[0]) if log_files else str(logs)
                services = _services_of(client, job["ID"]) or [job["ID"]]
                found.append(f"{', '.join(services)} cannot start: {job['ID']}/{task} {cause.text} (log: {where})")
    return found


async def _wait_ready(client: ClusterClient, cfg: StackSettings, progress: Callable[[str], None]) -> None:
    """Wait until every service is healthy; fail at the deadline, or at once when a task cannot come up."""
    deadline = time.monotonic() + cfg.ready_timeout_s
    logs = cfg.logs_dir
    next_crash_check = 0.0
    for service in SERVICES:
        progress(f"waiting for {service} to pass its health check")
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StackError(
                    f"{service} did not become healthy within {cfg.ready_timeout_s:.0f}s; "
                    f"see the logs in {logs} and `fleetmind status`"
                )
            # Every call is bounded by the deadline: an orchestrator that stops answering cannot hold `up`.
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(client.ahealthy_services(service), min(left, 5.0)):
                    break
            if time.monotonic() >= next_crash_check:
                next_crash_check = time.monotonic() + 1.0
                with contextlib.suppress(TimeoutError):
                    crashed = await asyncio.wait_for(asyncio.to_thread(crashed_tasks, client, logs), min(left, 5.0))
                    if crashed:
                        # named by what crashed, not by the service awaited when it was noticed
                        raise StackError("; ".join(crashed))
            await asyncio.sleep(0.25)
        progress(f"{service} is healthy")


async def run(
    cfg: StackSettings,
    stop: asyncio.Event,
    *,
    progress: Callable[[str], None] = lambda _msg: None,
    on_ready: Callable[[], None] = lambda: None,
    on_cluster: Callable[[str, str], None] = lambda _nomad, _consul: None,
) -> None:
    """Run the stack until ``stop`` is set; always stops every task before returning. ``on_cluster`` gets the
    addresses the embedded Nomad and Consul APIs listen on, once they do (port 0 in ``cfg`` means any free port)."""
    logs = cfg.logs_dir
    logs.mkdir(parents=True, exist_ok=True)
    token = ensure_token(cfg.cluster_token_file)
    from fleetmind.llm.gguf_convert import GGUF_FILENAME

    # plan() places the embedding model here (ensure_gguf), so this node's meta says so, as the llama_jobs role does
    # on a cluster: llama-embedder is pinned to the node whose meta names its model path.
    embedder_model = cfg.state_dir / "models" / GGUF_FILENAME
    cluster = EmbeddedCluster(
        logs_dir=logs,
        host=cfg.host,
        nomad_port=cfg.nomad_port,
        consul_port=cfg.consul_port,
        token=token,
        node_meta={"fleetmind_embedder_model": str(embedder_model)},
    )
    await cluster.start()
    try:
        on_cluster(cluster.nomad_addr, cluster.consul_addr)
        client = ClusterClient(consul_addr=cluster.consul_addr, nomad_addr=cluster.nomad_addr, token=token)
        # The jobs that talk to the cluster get its address and token in their env (NOMAD_TOKEN, CONSUL_HTTP_TOKEN).
        cluster_vars = {"consul_addr": cluster.consul_addr, "nomad_addr": cluster.nomad_addr}
        if not embedder_model.is_file():
            progress("converting all-MiniLM-L6-v2 to GGUF for the embedding server, once (a few seconds)")
        jobs = plan(cfg, {**cluster_vars, "nomad_token": token, "consul_token": token})
        for job in jobs:
            progress(f"submitting job {job['ID']}")
            await asyncio.to_thread(client.register_job, job)
        ready = asyncio.create_task(_wait_ready(client, cfg, progress))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            stopped.cancel()
            ready.result()
            on_ready()
            await stop.wait()
        else:
            ready.cancel()
    finally:
        progress("stopping every task")
        await cluster.stop()
