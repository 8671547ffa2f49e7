"""The embedded cluster's one node: who it is, what it is good for, and whether it takes new work.

Its ``meta`` carries the same placement facts a provisioned Nomad client gets from the inventory
(``fleetmind_class``, ``fleetmind_workload``, ``fleetmind_llama_variant``, ``fleetmind_quant``), computed from this
machine's own CPU flags, cores and RAM by :func:`fleetmind.llm.node_class.classify`, so job constraints on
``${meta.fleetmind_class}`` mean the same on one box as on a cluster. The one node is also tagged for RPC workers
(``fleetmind_rpc`` ``"true"``, which the Nomad role writes on hosts the inventory tags): on one box, a
``llamacpp-rpc`` job someone submits is meant to run here. Its attributes are the few Nomad
fingerprints a constraint is likely to name (``cpu.arch``, ``cpu.numcores``, ``memory.totalbytes``,
``kernel.name``, ``unique.hostname`` ...).

Scheduling eligibility and drain follow Nomad's node API: an ineligible node gets no new allocation. A drain
marks the node ineligible; with no other node to move work to, the embedded drain leaves the running
allocations alone (this node is the control node: stopping them would stop the stack) and completes at once,
as Nomad reports a finished drain (``Drain`` false, ``LastDrain.Status`` ``complete``, still ineligible).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetmind.cluster.constraints import DISTINCT_HOSTS, NodeFacts, describe, unmet, wants_distinct_hosts
from fleetmind.llm.node_class import classify
from fleetmind.llm.proof import cpu_flags

ELIGIBLE, INELIGIBLE = "eligible", "ineligible"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm"}


def _ram_mb(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def machine_meta_and_attributes(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[dict[str, str], dict[str, str]]:
    """This machine's placement meta (from :func:`classify`) and Nomad-style attributes."""
    model, flags = cpu_flags(cpuinfo)
    cores, ram = os.cpu_count() or 1, _ram_mb()
    placement = classify(flags, cores=cores, ram_mb=ram)
    attributes = {
        "cpu.arch": _ARCH.get(platform.machine(), platform.machine()),
        "cpu.numcores": str(cores),
        "cpu.modelname": model,
        "kernel.name": platform.system().lower(),
        "kernel.version": platform.release(),
        "os.name": platform.system().lower(),
        "driver.raw_exec": "1",
        "nomad.version": "embedded",
        "unique.hostname": platform.node(),
    }
    if ram is not None:
        attributes["memory.totalbytes"] = str(ram * 1024 * 1024)
    return placement.host_vars(), attributes


def _rfc3339(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))


@dataclass
class EmbeddedNode:
    """The one node, in Nomad's ``Node``/``NodeListStub`` shapes."""

    node_id: str
    name: str
    address: str
    datacenter: str
    region: str
    meta: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    eligibility: str = ELIGIBLE
    drain_strategy: dict[str, Any] | None = None
    last_drain: dict[str, Any] | None = None
    modify_index: int = 1

    @classmethod
    def this_machine(
        cls,
        *,
        node_id: str,
        name: str,
        address: str,
        datacenter: str,
        region: str,
        meta: Mapping[str, str] | None = None,
    ) -> EmbeddedNode:
        """The node as this machine's facts describe it; ``meta`` entries override the computed ones."""
        facts_meta, attributes = machine_meta_and_attributes()
        attributes["unique.network.ip-address"] = address
        facts_meta["fleetmind_rpc"] = "true"
        return cls(node_id, name, address, datacenter, region, {**facts_meta, **(meta or {})}, attributes)

    @property
    def facts(self) -> NodeFacts:
        return NodeFacts(
            node_id=self.node_id,
            name=self.name,
            datacenter=self.datacenter,
            region=self.region,
            attributes=self.attributes,
            meta=self.meta,
        )

    @property
    def variables(self) -> dict[str, str]:
        """The node's values by the names a job interpolates them with: ``meta.X``, ``attr.X``, ``node.*``."""
        names = {f"meta.{k}": v for k, v in self.meta.items()}
        names.update({f"attr.{k}": v for k, v in self.attributes.items()})
        names.update(
            {
                "node.unique.id": self.node_id,
                "node.unique.name": self.name,
                "node.datacenter": self.datacenter,
                "node.region": self.region,
                "node.class": "",
                "node.pool": "default",
            }
        )
        return names

    @property
    def eligible(self) -> bool:
        return self.eligibility == ELIGIBLE

    def refusal(self, constraints: list[dict[str, Any]], missing: int) -> tuple[dict[str, Any], str] | None:
        """Why this node cannot take ``missing`` allocations bound by ``constraints``, as Nomad's
        ``AllocationMetric`` and a sentence; None when it can."""
        metric: dict[str, Any] = {
            "NodesEvaluated": 0,
            "NodesFiltered": 0,
            "NodesExhausted": 0,
            "NodesAvailable": {self.datacenter: 0},
            "CoalescedFailures": missing - 1,
            "AllocationTime": 0,
        }
        if not self.eligible:
            return metric, f"node {self.name} is ineligible for scheduling (drained or marked ineligible)"
        metric["NodesEvaluated"] = 1
        metric["NodesAvailable"] = {self.datacenter: 1}
        for constraint in constraints:
            if constraint.get("Operand") == DISTINCT_HOSTS:
                continue  # about the allocations already here: the orchestrator counts them
            reason = unmet(constraint, self.facts)
            if reason is not None:
                metric["NodesFiltered"] = 1
                metric["ConstraintFiltered"] = {describe(constraint): 1}
                return metric, reason
        return None

    def distinct_room(
        self, job: Mapping[str, Any], group: Mapping[str, Any], here: list[tuple[str, str]], missing: int
    ) -> tuple[int, tuple[dict[str, Any], str] | None]:
        """How many of ``missing`` allocations of ``group`` this node may still take under ``distinct_hosts``
        (``here``: (job, group) of the allocations it already runs or was just given), and for the rest Nomad's
        metric and a sentence. Nomad's rule: a job-level ``distinct_hosts`` allows one allocation of the job per
        node, a group-level one one of the group; so with one node, one allocation runs and the rest stay queued."""
        by_job = wants_distinct_hosts(list(job.get("Constraints") or []))
        by_group = wants_distinct_hosts(list(group.get("Constraints") or []))
        if not (by_job or by_group) or missing <= 0:
            return missing, None
        clash = any(j == job["ID"] and (by_job or g == group["Name"]) for j, g in here)
        room = 0 if clash else 1
        left = missing - room
        if left == 0:
            return room, None
        metric: dict[str, Any] = {
            "NodesEvaluated": 1,
            "NodesFiltered": 1,
            "NodesExhausted": 0,
            "NodesAvailable": {self.datacenter: 1},
            "ConstraintFiltered": {DISTINCT_HOSTS: 1},
            "CoalescedFailures": left - 1,
            "AllocationTime": 0,
        }
        count = int(group.get("Count", 1))
        scope = "the job" if by_job else "the group"
        why = (
            f"distinct_hosts: {scope} runs one allocation per node and this cluster has one node ({self.name}), "
            f"so {count - left} of {count} run and {left} wait until another node joins"
        )
        return room, (metric, why)

    def drain_metadata(self, status: str, meta: Mapping[str, str] | None) -> dict[str, Any]:
        now = _rfc3339(time.time_ns())
        return {"StartedAt": now, "UpdatedAt": now, "Status": status, "Meta": dict(meta or {})}

    def stub(self) -> dict[str, Any]:
        """Nomad's ``NodeListStub``."""
        stub: dict[str, Any] = {
            "ID": self.node_id,
            "Name": self.name,
            "Address": self.address,
            "Datacenter": self.datacenter,
            "NodeClass": "",
            "NodePool": "default",
            "Drain": self.drain_strategy is not None,
            "SchedulingEligibility": self.eligibility,
            "Status": "ready",
            "StatusDescription": "",
            "Version": "embedded",
            "CreateIndex": 1,
            "ModifyIndex": self.modify_index,
            "Drivers": {
                "raw_exec": {
                    "Detected": True,
                    "Healthy": True,
                    "HealthDescription": "Healthy",
                    "UpdateTime": _rfc3339(time.time_ns()),
                }
            },
        }
        if self.last_drain is not None:
            stub["LastDrain"] = self.last_drain
        return stub

    def to_api(self) -> dict[str, Any]:
        """Nomad's ``Node``."""
        node = {**self.stub(), "Attributes": dict(self.attributes), "Meta": dict(self.meta), "HTTPAddr": ""}
        node.pop("NodePool", None)
        node.pop("Version", None)
        if self.drain_strategy is not None:
            node["DrainStrategy"] = self.drain_strategy
        return node
