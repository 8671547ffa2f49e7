"""The supervisor loop: detect → guard → diagnose → decide (rules, then LLM) → approve → heal → verify → audit.

One :meth:`Supervisor.tick` handles every fault the cluster shows now; :meth:`Supervisor.run` ticks until told
to stop. It runs in a thread (the cluster client is synchronous); a failure of one job's healing is audited and
never stops the loop. What could not be healed (``error``, ``mark_failed_and_alert``) becomes a YAML case for
adaptation (:mod:`.cases`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetmind.cluster.client import ClusterClient, ClusterError
from fleetmind.supervisor import ActionRefused, HealFailed
from fleetmind.supervisor import heal as healing
from fleetmind.supervisor.actions import RISK_ORDER, Decision, Risk
from fleetmind.supervisor.approvals import Approvals
from fleetmind.supervisor.audit import Audit
from fleetmind.supervisor.cases import HEAL, save_case
from fleetmind.supervisor.detect import Detector, Fault
from fleetmind.supervisor.diagnose import Diagnosis, diagnose
from fleetmind.supervisor.guard import Guard
from fleetmind.supervisor.reflect import Reflector
from fleetmind.supervisor.rules import RuleContext, decide_by_rules, fallback_for

log = logging.getLogger(__name__)


@dataclass
class Options:
    state_dir: Path
    logs_dir: Path | None = None
    disk_dir: Path | None = None  # whose free space the diagnosis reports (default: state_dir)
    fallback_model: Path | None = None
    approval_level: Risk = "high"  # actions at or above this risk wait for a person
    max_memory_mb: int = 4096
    verify_timeout_s: float = 45.0
    settle_s: float = 2.0
    interval_s: float = 1.0


class Supervisor:
    def __init__(
        self,
        client: ClusterClient,
        options: Options,
        *,
        detector: Detector | None = None,
        guard: Guard | None = None,
        reflector: Reflector | None = None,
        approvals: Approvals | None = None,
        audit: Audit | None = None,
    ) -> None:
        self.client = client
        self.options = options
        self.detector = detector or Detector(client)
        self.guard = guard or Guard()
        self.reflector = reflector
        self.approvals = approvals
        self.audit = audit or Audit(options.state_dir)
        self.rule_context = RuleContext(fallback_model=options.fallback_model)
        self.last_tick = time.monotonic()  # when the loop last finished a look at the cluster (its health)

    # -- the loop -----------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        log.info("supervisor watching %s", self.client.nomad_addr)
        while not stop.is_set():
            try:
                self.tick()
                self.last_tick = time.monotonic()
            except ClusterError as exc:
                log.warning("supervisor cannot read the cluster: %s", exc)
            stop.wait(self.options.interval_s)

    def tick(self) -> list[dict[str, Any]]:
        """Handle every fault seen now; returns the audit entries written."""
        entries = []
        for fault in self.detector.scan():
            verdict, why = self.guard.admit(fault)
            if verdict == "skip":
                continue
            try:
                entries.append(self.handle(fault, escalate_because=why if verdict == "escalate" else None))
            except ClusterError as exc:
                log.warning("supervisor could not handle %s: %s", fault.signature, exc)
        return entries

    # -- one fault ----------------------------------------------------------------------------------------
    def handle(self, fault: Fault, *, escalate_because: str | None = None) -> dict[str, Any]:
        started = time.monotonic()
        diagnosis = diagnose(
            self.client,
            fault,
            state_dir=self.options.disk_dir or self.options.state_dir,
            logs_dir=self.options.logs_dir,
        )
        base: dict[str, Any] = {
            "job": fault.job,
            "fault": fault.to_dict(),
            "diagnosis": diagnosis.to_dict(),
            "detected_at": fault.detected_at,
        }
        if escalate_because is not None:
            decision = Decision("mark_failed_and_alert", escalate_because, "guard", rule="guard")
            return self._escalate(base, diagnosis, decision, started)
        decision, refusal = self.decide(diagnosis)
        if refusal is not None:
            self.audit.write({**base, **refusal, "outcome": "refused", "decided_at": time.time()})
        if decision.escalates:
            return self._escalate(base, diagnosis, decision, started)
        try:
            plan = healing.plan(
                self.client,
                decision,
                diagnosis,
                fallback_model=fallback_for(diagnosis, self.rule_context),
                max_memory_mb=self.options.max_memory_mb,
            )
        except HealFailed as exc:
            failed = Decision("mark_failed_and_alert", f"{decision.action} cannot apply: {exc}", decision.decided_by)
            return self._escalate(base, diagnosis, failed, started, tried=decision)
        entry = {**base, **decision.to_dict(), "risk": plan.risk, "detail": plan.detail, "decided_at": time.time()}
        if RISK_ORDER[plan.risk] >= RISK_ORDER[self.options.approval_level]:
            verdict = None
            if self.approvals is not None:
                verdict = self.approvals.ask(
                    job=fault.job, action=decision.action, risk=plan.risk, reason=decision.reason, detail=plan.detail
                )
            entry["approval"] = {
                "outcome": verdict.outcome if verdict else "no_gate",
                "by": verdict.by if verdict else None,
                "id": verdict.approval_id if verdict else None,
            }
            if verdict is None or not verdict.approved:
                self.guard.escalated(fault.job, fault.job_version)
                outcome = verdict.outcome if verdict else "needs_approval"
                return self.audit.write({**entry, "outcome": outcome, "attempt": 0})
        before = self._newest_index(fault.job)
        attempt = self.guard.acted(fault.job)
        try:
            entry["detail"], facts = healing.apply(
                self.client, plan, diagnosis, disk_dir=self.options.disk_dir or self.options.state_dir
            )
            entry.update(facts)
        except HealFailed as exc:
            self.guard.escalated(fault.job, fault.job_version)
            return self.audit.write({**entry, "outcome": "failed", "error": str(exc)[:500], "attempt": attempt})
        applied_at = time.time()
        healed = self.verify(fault.job, before)
        outcome = "healed" if healed else "not_healed"
        if healed:
            self.guard.healed(fault.job)
        return self.audit.write(
            {
                **entry,
                "outcome": outcome,
                "attempt": attempt,
                "applied_at": applied_at,
                "healed_at": time.time() if healed else None,
                "time_to_heal_s": round(time.time() - fault.detected_at, 2) if healed else None,
                "handled_in_s": round(time.monotonic() - started, 2),
            }
        )

    def decide(self, diagnosis: Diagnosis) -> tuple[Decision, dict[str, Any] | None]:
        """The rules' decision, else the LLM's; a refused LLM answer becomes ``error`` (and is returned too)."""
        decision = decide_by_rules(diagnosis, self.rule_context)
        if decision is not None:
            return decision, None
        if self.reflector is None:
            return Decision("error", "no rule matched and no reflection LLM is configured", "guard"), None
        try:
            return self.reflector.decide(diagnosis.to_dict()), None
        except ActionRefused as exc:
            refusal = {"action": "refused", "decided_by": "llm", "reason": str(exc)[:300], "refused": str(exc)[:300]}
            log.warning("supervisor refused the LLM's answer for %s: %s", diagnosis.fault.job, exc)
            return Decision("error", f"the LLM's answer was refused: {exc}"[:300], "llm"), refusal

    def _escalate(
        self,
        base: dict[str, Any],
        diagnosis: Diagnosis,
        decision: Decision,
        started: float,
        *,
        tried: Decision | None = None,
    ) -> dict[str, Any]:
        fault = diagnosis.fault
        self.guard.escalated(fault.job, fault.job_version)
        expected = decision.action if decision.decided_by == "rule" else HEAL
        case = save_case(self.options.state_dir, diagnosis.to_dict(), expected=expected, note=decision.reason)
        entry = {
            **base,
            **decision.to_dict(),
            "outcome": "escalated",
            "attempt": 0,
            "decided_at": time.time(),
            "case": str(case),
            "handled_in_s": round(time.monotonic() - started, 2),
        }
        if tried is not None:
            entry["tried"] = tried.to_dict()
        return self.audit.write(entry)

    # -- verification -------------------------------------------------------------------------------------
    def _newest_index(self, job: str) -> int:
        return max((int(a.get("CreateIndex") or 0) for a in self.client.job_allocations(job)), default=0)

    def _healthy_now(self, job: str, before: int) -> tuple[tuple[str, int], ...] | None:
        """The new allocations and their restart counts when all run with passing checks, else None."""
        allocs = [
            a
            for a in self.client.job_allocations(job)
            if a.get("DesiredStatus") == "run" and int(a.get("CreateIndex") or 0) > before
        ]
        if not allocs or any(a.get("ClientStatus") != "running" for a in allocs):
            return None
        spec = self.client.job(job)
        names = {s["Name"] for g in spec.get("TaskGroups") or [] for s in g.get("Services") or [] if s.get("Checks")}
        checks = [c for n in names for c in self.client.service_checks(n)]
        for alloc in allocs:
            mine = [c for c in checks if alloc["ID"] in c["ServiceID"]]
            if names and (not mine or any(c["Status"] != "passing" for c in mine)):
                return None
        return tuple(
            (a["ID"], sum(int(t.get("Restarts") or 0) for t in (a.get("TaskStates") or {}).values())) for a in allocs
        )

    def verify(self, job: str, before: int) -> bool:
        """Whether the job has new allocations that run (checks passing, no restart) for ``settle_s``."""
        deadline = time.monotonic() + self.options.verify_timeout_s
        good: tuple[tuple[str, int], ...] | None = None
        good_since = 0.0
        while time.monotonic() < deadline:
            now = self._healthy_now(job, before)
            if now is None or now != good:
                good, good_since = now, time.monotonic()
            elif time.monotonic() - good_since >= self.options.settle_s:
                return True
            time.sleep(0.2)
        return False
