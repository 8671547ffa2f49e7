"""The provisioning service: what the routes ask for, in one place (accept a call-home, retry, report status).

A call-home is accepted in this order: the token and the node's free slot are checked and the job recorded in
one database transaction; then the node is written into the inventory (under its lock); then the job is handed
to the runner. The node's placement (class, llama.cpp variant, quantisation, workload;
:mod:`fleetmind.llm.node_class`) is computed from its facts and written with it. A request refused at any step
leaves no job, no inventory change and no run behind it. If the inventory write fails after the job was recorded,
that job is closed as ``failed`` with the reason. A node bound to a MAC address (by an earlier call-home or in the
inventory) is only accepted again with that same MAC."""

from __future__ import annotations

from fleetmind.llm.node_class import classify
from fleetmind.provisioning.errors import InvalidNodeError, NodeIdentityError, NotFoundError, ProvisioningError
from fleetmind.provisioning.inventory import Inventory
from fleetmind.provisioning.runner import JobRunner
from fleetmind.provisioning.schemas import CallHomeRequest, Job, JobList, Node, NodeStatus
from fleetmind.provisioning.settings import ProvisionSettings
from fleetmind.provisioning.store import JobStore
from fleetmind.security import hash_key


class ProvisioningService:
    def __init__(self, settings: ProvisionSettings, store: JobStore, inventory: Inventory, runner: JobRunner) -> None:
        self.settings = settings
        self.store = store
        self.inventory = inventory
        self.runner = runner

    def check_name(self, hostname: str) -> None:
        if hostname in self.settings.reserved_names:
            raise InvalidNodeError(
                f"'{hostname}' is reserved (an inventory group or localhost); give the node its own name",
                param="hostname",
            )

    def check_mac(self, request: CallHomeRequest) -> None:
        """A node the inventory binds to a MAC (also one added by hand) is only claimed with that MAC."""
        entry = self.inventory.get(request.hostname)
        if entry is not None and entry.mac is not None and entry.mac.lower() != (request.mac or "").lower():
            raise NodeIdentityError(
                f"node {request.hostname!r} is enrolled with "
                + ("another MAC address" if request.mac else "a MAC address, and this call-home sent none")
                + "; remove it from the inventory first if the machine was replaced",
                param="mac",
            )

    def call_home(self, token: str, request: CallHomeRequest) -> Job:
        """Accept a node: record its job, put it in the inventory, queue the run."""
        self.check_name(request.hostname)
        self.check_mac(request)
        job = self.store.accept_call_home(hash_key(token), request)
        facts = request.facts.model_dump(exclude_none=True, exclude_defaults=True)
        placement = classify(request.facts.cpu_flags, cores=request.facts.cores, ram_mb=request.facts.ram_mb)
        try:
            self.inventory.upsert(
                request.hostname,
                role=job.role,
                ip=request.ip,
                mac=request.mac,
                facts=facts,
                placement=placement.host_vars(),
            )
        except ProvisioningError as exc:
            self.store.finish(job.id, "failed", error=exc.message)
            raise
        self.runner.submit(job)
        return job

    def retry(self, hostname: str) -> Job:
        if self.inventory.get(hostname) is None:
            raise NotFoundError(f"node {hostname!r} is not in the inventory", param="hostname")
        job = self.store.create_retry(hostname)
        self.runner.submit(job)
        return job

    def nodes(self) -> list[Node]:
        latest = self.store.latest_per_host()
        out: list[Node] = []
        for name, entry in sorted(self.inventory.hosts().items()):
            last = latest.get(name)
            out.append(
                Node(
                    hostname=name,
                    role=entry.group,
                    ip=entry.ip,
                    mac=entry.mac,
                    in_inventory=True,
                    last_state=last.state if last else None,
                )
            )
        return out

    def node_status(self, hostname: str, *, limit: int = 20) -> NodeStatus:
        entry = self.inventory.get(hostname)
        jobs = self.store.jobs(hostname=hostname, limit=limit)
        if entry is None and not jobs:
            raise NotFoundError(f"no node {hostname!r} has called home", param="hostname")
        last = jobs[0] if jobs else None
        node = Node(
            hostname=hostname,
            role=entry.group if entry else (last.role if last else None),
            ip=entry.ip if entry else (last.ip if last else None),
            mac=entry.mac if entry else (last.mac if last else None),
            in_inventory=entry is not None,
            last_state=last.state if last else None,
        )
        return NodeStatus(node=node, jobs=jobs)

    def job(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r}", param="job_id")
        return job

    def jobs(self, *, state: str | None = None, limit: int = 100) -> JobList:
        return JobList(jobs=self.store.jobs(state=state, limit=limit), counts=self.store.counts())
