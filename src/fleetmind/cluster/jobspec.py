"""Load ``jobs/<name>.nomad.hcl`` into Nomad's API JSON Job, the form ``nomad job run -output`` prints.

python-hcl2 parses the file; :mod:`fleetmind.cluster.variables` applies the ``variable`` blocks and
:mod:`fleetmind.cluster.hcl` evaluates ``var.*`` references, while run-time interpolations such as
``${NOMAD_PORT_http}`` stay in the strings for the orchestrator. The subset of the job language fleetmind's
jobs use is mapped field by field (durations become nanoseconds, unset policies get Nomad's defaults);
anything outside it is refused with a :class:`JobSpecError` that names the file, the line where it can be
found, and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

from fleetmind.cluster import variables as hclvars
from fleetmind.cluster.constraints import NO_VALUE, OPERATORS, check_regexp
from fleetmind.cluster.errors import JobSpecError
from fleetmind.cluster.hcl import Evaluator, HclEvalError
from fleetmind.cluster.hclblocks import BlockReader, Ctx

_OPTIONS = SerializationOptions(with_comments=False, preserve_heredocs=False)
S = 1_000_000_000
# Nomad's defaults for unset restart/reschedule fields, by job type (nomad/structs/structs.go).
RESTART_DEFAULTS: dict[str, dict[str, Any]] = {
    "service": {"Attempts": 2, "Interval": 1800 * S, "Delay": 15 * S, "Mode": "fail"},
    "batch": {"Attempts": 3, "Interval": 86400 * S, "Delay": 15 * S, "Mode": "fail"},
}
RESCHEDULE_DEFAULTS: dict[str, dict[str, Any]] = {
    "service": {
        "Attempts": 0,
        "Interval": 0,
        "Delay": 30 * S,
        "DelayFunction": "exponential",
        "MaxDelay": 3600 * S,
        "Unlimited": True,
    },
    "batch": {
        "Attempts": 1,
        "Interval": 86400 * S,
        "Delay": 5 * S,
        "DelayFunction": "constant",
        "MaxDelay": 0,
        "Unlimited": False,
    },
}


class _JobBuilder(BlockReader):
    """Builds the API JSON Job from the parsed file."""

    # -- the job ------------------------------------------------------------------------------------------
    def job(self, label: str, body: dict[str, Any]) -> dict[str, Any]:
        ctx: Ctx = (("job", label),)
        self.check_fields(
            body,
            {
                "name",
                "type",
                "datacenters",
                "region",
                "namespace",
                "priority",
                "meta",
                "group",
                "node_pool",
                "all_at_once",
                "constraint",
            },
            ctx,
        )
        job_type = self.get(body, "type", ctx, str, "service")
        if job_type not in RESTART_DEFAULTS:
            raise self.error(ctx, "type", f"job type {job_type!r} is not supported (service or batch)")
        job: dict[str, Any] = {
            "ID": label,
            "Name": self.get(body, "name", ctx, str, label),
            "Type": job_type,
            "Datacenters": self.str_list(body, "datacenters", ctx) or ["*"],
            "Priority": self.get(body, "priority", ctx, int, 50),
        }
        for key, field in (("region", "Region"), ("namespace", "Namespace"), ("node_pool", "NodePool")):
            if key in body:
                job[field] = self.get(body, key, ctx, str)
        if (meta := self.str_map(body, "meta", ctx)) is not None:
            job["Meta"] = meta
        if constraints := self.constraints(body, ctx):
            job["Constraints"] = constraints
        groups = self.blocks(body, "group", ctx)
        if not groups:
            raise self.error(ctx, None, "a job needs at least one group block")
        job["TaskGroups"] = [self.group(str(name), g, ctx, job_type) for name, g in groups]
        return job

    def group(self, name: str, body: dict[str, Any], parent: Ctx, job_type: str) -> dict[str, Any]:
        ctx: Ctx = (*parent, ("group", name))
        self.check_fields(
            body,
            {"count", "restart", "reschedule", "network", "service", "task", "meta", "shutdown_delay", "constraint"},
            ctx,
        )
        group: dict[str, Any] = {"Name": name, "Count": self.get(body, "count", ctx, int, 1)}
        group["RestartPolicy"] = self.restart(self.one_block(body, "restart", ctx), ctx, job_type)
        group["ReschedulePolicy"] = self.reschedule(self.one_block(body, "reschedule", ctx), ctx, job_type)
        networks = [self.network(b, ctx) for _, b in self.blocks(body, "network", ctx)]
        if networks:
            group["Networks"] = networks
        services = [self.service(b, ctx) for _, b in self.blocks(body, "service", ctx)]
        if services:
            group["Services"] = services
        if (meta := self.str_map(body, "meta", ctx)) is not None:
            group["Meta"] = meta
        if (delay := self.duration(body, "shutdown_delay", ctx)) is not None:
            group["ShutdownDelay"] = delay
        if constraints := self.constraints(body, ctx):
            group["Constraints"] = constraints
        tasks = self.blocks(body, "task", ctx)
        if not tasks:
            raise self.error(ctx, None, "a group needs at least one task block")
        group["Tasks"] = [self.task(str(task_name), t, ctx) for task_name, t in tasks]
        return group

    def restart(self, body: dict[str, Any] | None, parent: Ctx, job_type: str) -> dict[str, Any]:
        policy: dict[str, Any] = dict(RESTART_DEFAULTS[job_type])
        if body is None:
            return policy
        ctx: Ctx = (*parent, ("restart", None))
        self.check_fields(body, {"attempts", "interval", "delay", "mode", "render_templates"}, ctx)
        policy["Attempts"] = self.get(body, "attempts", ctx, int, policy["Attempts"])
        policy["Interval"] = self.duration(body, "interval", ctx, policy["Interval"])
        policy["Delay"] = self.duration(body, "delay", ctx, policy["Delay"])
        policy["Mode"] = self.get(body, "mode", ctx, str, policy["Mode"])
        if policy["Mode"] not in ("fail", "delay"):
            raise self.error(ctx, "mode", f'must be "fail" or "delay", not {policy["Mode"]!r}')
        return policy

    def reschedule(self, body: dict[str, Any] | None, parent: Ctx, job_type: str) -> dict[str, Any]:
        policy: dict[str, Any] = dict(RESCHEDULE_DEFAULTS[job_type])
        if body is None:
            return policy
        ctx: Ctx = (*parent, ("reschedule", None))
        self.check_fields(body, {"attempts", "interval", "delay", "delay_function", "max_delay", "unlimited"}, ctx)
        policy["Attempts"] = self.get(body, "attempts", ctx, int, policy["Attempts"])
        policy["Interval"] = self.duration(body, "interval", ctx, policy["Interval"])
        policy["Delay"] = self.duration(body, "delay", ctx, policy["Delay"])
        policy["DelayFunction"] = self.get(body, "delay_function", ctx, str, policy["DelayFunction"])
        policy["MaxDelay"] = self.duration(body, "max_delay", ctx, policy["MaxDelay"])
        policy["Unlimited"] = self.get(body, "unlimited", ctx, bool, policy["Unlimited"])
        if policy["DelayFunction"] not in ("constant", "exponential", "fibonacci"):
            raise self.error(ctx, "delay_function", "must be constant, exponential or fibonacci")
        return policy

    def network(self, body: dict[str, Any], parent: Ctx) -> dict[str, Any]:
        ctx: Ctx = (*parent, ("network", None))
        self.check_fields(body, {"mode", "port"}, ctx)
        network: dict[str, Any] = {"Mode": self.get(body, "mode", ctx, str, "host")}
        reserved: list[dict[str, Any]] = []
        dynamic: list[dict[str, Any]] = []
        for label, port_body in self.blocks(body, "port", ctx):
            pctx: Ctx = (*ctx, ("port", label))
            self.check_fields(port_body, {"static", "to", "host_network"}, pctx)
            port: dict[str, Any] = {"Label": label, "Value": self.get(port_body, "static", pctx, int, 0)}
            if "to" in port_body:
                port["To"] = self.get(port_body, "to", pctx, int)
            (reserved if "static" in port_body else dynamic).append(port)
        if reserved:
            network["ReservedPorts"] = reserved
        if dynamic:
            network["DynamicPorts"] = dynamic
        return network

    def service(self, body: dict[str, Any], parent: Ctx) -> dict[str, Any]:
        ctx: Ctx = (*parent, ("service", None))
        self.check_fields(
            body,
            {
                "name",
                "port",
                "tags",
                "canary_tags",
                "meta",
                "provider",
                "address_mode",
                "task",
                "check",
                "check_restart",
            },
            ctx,
        )
        job_name, group_name = parent[0][1], parent[-1][1]
        service: dict[str, Any] = {
            "Name": self.get(body, "name", ctx, str, f"{job_name}-{group_name}"),
            "Provider": self.get(body, "provider", ctx, str, "consul"),
        }
        if "port" in body:
            service["PortLabel"] = self.get(body, "port", ctx, str)
        for key, field in (("tags", "Tags"), ("canary_tags", "CanaryTags")):
            if (values := self.str_list(body, key, ctx)) is not None:
                service[field] = values
        if (meta := self.str_map(body, "meta", ctx)) is not None:
            service["Meta"] = meta
        for key, field in (("address_mode", "AddressMode"), ("task", "TaskName")):
            if key in body:
                service[field] = self.get(body, key, ctx, str)
        if (restart := self.one_block(body, "check_restart", ctx)) is not None:
            service["CheckRestart"] = self.check_restart(restart, ctx)
        checks = [self.check(b, ctx, service["Name"]) for _, b in self.blocks(body, "check", ctx)]
        if checks:
            service["Checks"] = checks
        return service

    def check(self, body: dict[str, Any], parent: Ctx, service_name: str) -> dict[str, Any]:
        ctx: Ctx = (*parent, ("check", None))
        self.check_fields(
            body,
            {
                "name",
                "type",
                "path",
                "interval",
                "timeout",
                "port",
                "method",
                "protocol",
                "check_restart",
                "initial_status",
                "task",
                "success_before_passing",
                "failures_before_critical",
                "tls_skip_verify",
            },
            ctx,
        )
        check_type = self.get(body, "type", ctx, str, required=True)
        if check_type not in ("http", "tcp"):
            raise self.error(ctx, "type", f"check type {check_type!r} is not supported (http or tcp)")
        check: dict[str, Any] = {
            "Name": self.get(body, "name", ctx, str, f'service: "{service_name}" check'),
            "Type": check_type,
            "Interval": self.duration(body, "interval", ctx, required=True),
            "Timeout": self.duration(body, "timeout", ctx, required=True),
        }
        if check_type == "http":
            check["Path"] = self.get(body, "path", ctx, str, required=True)
        for key, field, kind in (
            ("port", "PortLabel", str),
            ("method", "Method", str),
            ("protocol", "Protocol", str),
            ("initial_status", "InitialStatus", str),
            ("task", "TaskName", str),
            ("success_before_passing", "SuccessBeforePassing", int),
            ("failures_before_critical", "FailuresBeforeCritical", int),
            ("tls_skip_verify", "TLSSkipVerify", bool),
        ):
            if key in body:
                check[field] = self.get(body, key, ctx, kind)
        if (restart := self.one_block(body, "check_restart", ctx)) is not None:
            check["CheckRestart"] = self.check_restart(restart, ctx)
        return check

    def check_restart(self, body: dict[str, Any], parent: Ctx) -> dict[str, Any]:
        ctx: Ctx = (*parent, ("check_restart", None))
        self.check_fields(body, {"limit", "grace", "ignore_warnings"}, ctx)
        return {
            "Limit": self.get(body, "limit", ctx, int, 0),
            "Grace": self.duration(body, "grace", ctx, 1 * S),
            "IgnoreWarnings": self.get(body, "ignore_warnings", ctx, bool, False),
        }

    def task(self, name: str, body: dict[str, Any], parent: Ctx) -> dict[str, Any]:
        ctx: Ctx = (*parent, ("task", name))
        self.check_fields(
            body,
            {
                "driver",
                "config",
                "env",
                "resources",
                "kill_timeout",
                "kill_signal",
                "meta",
                "service",
                "user",
                "leader",
                "constraint",
            },
            ctx,
        )
        task: dict[str, Any] = {"Name": name, "Driver": self.get(body, "driver", ctx, str, required=True)}
        config_body = self.one_block(body, "config", ctx) or {}
        cctx: Ctx = (*ctx, ("config", None))
        task["Config"] = {k: self.get(config_body, k, cctx, object) for k in config_body if not k.startswith("__")}
        if task["Driver"] in ("raw_exec", "exec") and not isinstance(task["Config"].get("command"), str):
            raise self.error(cctx, "command", f"the {task['Driver']} driver needs a command string")
        if "args" in task["Config"]:
            args = task["Config"]["args"]
            if not isinstance(args, list):
                raise self.error(cctx, "args", "expected a list of strings")
            task["Config"]["args"] = [hclvars.coerce(a, "string") for a in args]
        if (env := self.str_map(body, "env", ctx)) is not None:
            task["Env"] = env
        resources = self.one_block(body, "resources", ctx) or {}
        rctx: Ctx = (*ctx, ("resources", None))
        self.check_fields(resources, {"cpu", "memory", "memory_max", "cores"}, rctx)
        task["Resources"] = {
            "CPU": self.get(resources, "cpu", rctx, int, 100),
            "MemoryMB": self.get(resources, "memory", rctx, int, 300),
        }
        for key, field in (("memory_max", "MemoryMaxMB"), ("cores", "Cores")):
            if key in resources:
                task["Resources"][field] = self.get(resources, key, rctx, int)
        task["KillTimeout"] = self.duration(body, "kill_timeout", ctx, 5 * S)
        for key, field, kind in (
            ("kill_signal", "KillSignal", str),
            ("user", "User", str),
            ("leader", "Leader", bool),
        ):
            if key in body:
                task[field] = self.get(body, key, ctx, kind)
        if (meta := self.str_map(body, "meta", ctx)) is not None:
            task["Meta"] = meta
        services = [self.service(b, ctx) for _, b in self.blocks(body, "service", ctx)]
        if services:
            task["Services"] = services
        if constraints := self.constraints(body, ctx):
            task["Constraints"] = constraints
        return task

    def constraints(self, body: dict[str, Any], parent: Ctx) -> list[dict[str, str]]:
        """``constraint { attribute, operator, value }`` blocks as Nomad's ``Constraints`` (the operator
        defaults to ``=``, as in Nomad; ``${meta.*}``, ``${attr.*}`` and ``${node.*}`` stay for the scheduler)."""
        out: list[dict[str, str]] = []
        for _, block in self.blocks(body, "constraint", parent):
            ctx: Ctx = (*parent, ("constraint", None))
            self.check_fields(block, {"attribute", "operator", "value"}, ctx)
            operand = self.get(block, "operator", ctx, str, "=")
            if operand not in OPERATORS:
                raise self.error(
                    ctx, "operator", f"unknown operator {operand!r} (Nomad's: {', '.join(sorted(OPERATORS))})"
                )
            ltarget = self.get(block, "attribute", ctx, str, "")
            rtarget = self.get(block, "value", ctx, (str, bool), "")
            rtarget = hclvars.coerce(rtarget, "string") if isinstance(rtarget, bool) else rtarget
            if not ltarget and operand not in ("distinct_hosts",):
                raise self.error(ctx, "attribute", f"is required for the {operand!r} operator")
            if not rtarget and operand not in NO_VALUE:
                raise self.error(ctx, "value", f"is required for the {operand!r} operator")
            constraint = {"LTarget": ltarget, "RTarget": rtarget, "Operand": operand}
            if "${" not in rtarget and (problem := check_regexp(constraint)):
                raise self.error(ctx, "value", problem)
            out.append(constraint)
        return out


def load_job(path: Path, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Parse a job file and return its Nomad API JSON Job (no ``{"Job": ...}`` wrapper).

    ``variables`` fills the file's ``variable`` blocks (like ``nomad job run -var``).
    Raises :class:`JobSpecError`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JobSpecError(f"{path}: cannot read the job file: {exc}") from exc
    try:
        parsed = hcl2.loads(text, serialization_options=_OPTIONS)
    except Exception as exc:  # lark raises a family of parse errors; all mean the same to the caller
        line = getattr(exc, "line", None)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise JobSpecError(f"{path}:{line}: HCL syntax error: {first}" if line else f"{path}: {first}") from None
    builder = _JobBuilder(path, text, Evaluator({}))
    unknown = set(parsed) - {"variable", "job"}
    if unknown:
        key = sorted(unknown)[0]
        raise builder.error((), key, "unsupported top-level block (a job file holds variable blocks and one job)")
    declared: dict[str, hclvars.Variable] = {}
    for name, body in builder.blocks(parsed, "variable", ()):
        try:
            declared[str(name)] = hclvars.declare(str(name), body)
        except HclEvalError as exc:
            raise builder.error((("variable", name),), None, str(exc)) from None
    try:
        values = hclvars.resolve(declared, variables)
    except HclEvalError as exc:
        raise JobSpecError(f"{path}: {exc}") from None
    builder.ev = Evaluator(values)
    jobs = builder.blocks(parsed, "job", ())
    if len(jobs) != 1 or jobs[0][0] is None:
        raise JobSpecError(f"{path}: a job file must hold exactly one labelled job block, found {len(jobs)}")
    return builder.job(str(jobs[0][0]), jobs[0][1])
