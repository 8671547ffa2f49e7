"""``ansible``: an ad-hoc module or a playbook against the inventory through ansible-runner, check mode by default.

Every call needs a person's approval, check mode included: Ansible runs lookups, templates and action plugins on
the controller (as whoever runs the agent, often root) before check mode means anything, so no run is proven
read-only by its arguments. The arguments are data, never templates: a call whose arguments hold Jinja syntax
(``{{``, ``{%``, ``{#``) anywhere, or that uses a module whose arguments Ansible evaluates as bare expressions
(``assert``'s ``that``, ``debug``'s ``var``), is refused before anyone is asked. The inventory is the one set by
``FLEETMIND_TOOLS_ANSIBLE_INVENTORY`` and never a file the agent can write (one inside the workspace is
refused); playbooks are files in the workspace; Ansible's configuration is pinned to an empty file, so no
``ansible.cfg`` next to a playbook applies. The result lists, per host, whether each task was ok, changed,
failed, skipped or unreachable, with the module's message.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import ansible_runner

from fleetmind.tools.base import ToolCall, tool
from fleetmind.tools.builtin.files import workspace_path
from fleetmind.tools.errors import ToolArgumentsError, ToolExecutionError

COMMAND_MODULES = {"raw", "script", "shell", "command", "expect", "win_shell", "win_command"}
# Jinja's block, variable and comment openers: any of them in an argument would be rendered on the controller
TEMPLATE_MARKERS = ("{{", "{%", "{#")
# modules whose named argument Ansible evaluates as a Jinja expression without any marker (None: every call)
EXPRESSION_MODULES: dict[str, str | None] = {"assert": None, "debug": "var"}
RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
KEEP = ("msg", "changed", "rc", "stdout", "stderr", "diff", "path", "state", "ping", "failed", "skipped")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def check_ansible_args(args: dict[str, Any]) -> None:
    """Refuse template syntax anywhere in ``args`` and the modules that evaluate their arguments as expressions."""
    problems = [
        f"- {text[:80]!r} holds Jinja syntax ({marker}); tool arguments are data and are never templated"
        for text in _strings(args)
        for marker in TEMPLATE_MARKERS
        if marker in text
    ]
    module = str(args.get("module", "")).rsplit(".", 1)[-1]
    if module in EXPRESSION_MODULES:
        name = EXPRESSION_MODULES[module]
        margs = args.get("module_args", "")
        named = name is None or (name in margs if isinstance(margs, dict) else f"{name}=" in str(margs))
        if named:
            what = f"its '{name}' argument" if name else "its arguments"
            problems.append(f"- module {module}: Ansible evaluates {what} as a Jinja expression; not allowed here")
    if problems:
        raise ToolArgumentsError("\n".join(problems), problems)


def _inventory(ctx: Any) -> Path:
    """The configured inventory; never one in the workspace, where the agent itself could write hosts and vars."""
    if ctx.ansible_inventory is None:
        raise ToolExecutionError("no inventory: set FLEETMIND_TOOLS_ANSIBLE_INVENTORY")
    inventory = Path(ctx.ansible_inventory).resolve()
    if inventory.is_relative_to(Path(ctx.workspace).resolve()):
        raise ToolExecutionError(
            f"the inventory {inventory} is inside the agent's workspace, where the agent can rewrite it; "
            "keep FLEETMIND_TOOLS_ANSIBLE_INVENTORY outside it"
        )
    if not inventory.is_file():
        raise ToolExecutionError(f"inventory {inventory} does not exist")
    return inventory


def _result(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("event_data") or {}
    res = data.get("res") or {}
    kept = {k: res[k] for k in KEEP if k in res}
    if "ansible_facts" in res:
        kept["facts"] = sorted(res["ansible_facts"])[:50]
    return {
        "host": data.get("host"),
        "task": data.get("task"),
        "status": RESULT_EVENTS[event["event"]],
        "changed": bool(res.get("changed")),
        "result": json.loads(json.dumps(kept, default=str)),
    }


@tool(
    "ansible",
    "Run an Ansible module ad hoc, or a playbook from the workspace, against hosts of the inventory. Check mode "
    "(nothing changes) unless check is false. Needs a person's approval; arguments must not contain Jinja.",
    {
        "type": "object",
        "properties": {
            "hosts": {"type": "string", "minLength": 1, "maxLength": 256, "default": "all"},
            "module": {"type": "string", "pattern": r"^[A-Za-z0-9_.]+$", "maxLength": 128},
            "module_args": {"oneOf": [{"type": "string", "maxLength": 10_000}, {"type": "object"}]},
            "playbook": {"type": "string", "maxLength": 1024, "description": "a playbook file in the workspace"},
            "check": {"type": "boolean", "default": True},
            "timeout_s": {"type": "integer", "minimum": 5, "maximum": 3600, "default": 300},
        },
        "oneOf": [{"required": ["module"]}, {"required": ["playbook"]}],
    },
    risk="approval",
    check_args=check_ansible_args,
    timeout_s=3700.0,
)
def ansible(call: ToolCall) -> dict[str, Any]:
    ctx = call.context
    check_ansible_args(call.args)  # also here: a caller that reaches the function some other way
    inventory = _inventory(ctx)
    check = bool(call.args.get("check", True))
    hosts = call.args.get("hosts", "all")
    results: list[dict[str, Any]] = []

    def on_event(event: dict[str, Any]) -> bool:
        if event.get("event") in RESULT_EVENTS:
            results.append(_result(event))
        return True

    kwargs: dict[str, Any] = {}
    if "playbook" in call.args:
        playbook = workspace_path(ctx, call.args["playbook"])
        if not playbook.is_file():
            raise ToolExecutionError(f"no playbook {call.args['playbook']!r} in the workspace")
        kwargs.update(project_dir=str(playbook.parent), playbook=playbook.name, limit=hosts)
    else:
        margs = call.args.get("module_args", "")
        kwargs.update(
            host_pattern=hosts,
            module=call.args["module"],
            module_args=json.dumps(margs) if isinstance(margs, dict) else margs,
        )
    bindir = str(Path(sys.executable).parent)  # ansible-runner needs our venv's ansible programs on PATH
    env = {
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }
    with tempfile.TemporaryDirectory(prefix="fleetmind-ansible-") as run_dir:
        config = Path(run_dir) / "ansible.cfg"
        config.write_text("# fleetmind: no ansible.cfg from a playbook's folder applies\n")
        env["ANSIBLE_CONFIG"] = str(config)
        try:
            runner = ansible_runner.run(
                private_data_dir=run_dir,
                inventory=str(inventory),
                quiet=True,
                envvars=env,
                cmdline="--check --diff" if check else None,
                event_handler=on_event,
                timeout=int(call.args.get("timeout_s", 300)),
                **kwargs,
            )
        except Exception as exc:
            raise ToolExecutionError(f"ansible-runner could not start: {exc}") from None
        # (runner.stdout opens a new file on every access: read the artifact ourselves, before the folder goes)
        stdout_file = Path(runner.config.artifact_dir) / "stdout"
        stdout = stdout_file.read_text(errors="replace") if stdout_file.exists() else ""
    summary = {s: sum(1 for r in results if r["status"] == s) for s in RESULT_EVENTS.values()}
    summary["changed"] = sum(1 for r in results if r["changed"])
    out = {"status": str(runner.status), "rc": runner.rc, "check": check, "summary": summary, "results": results}
    if runner.status != "successful" and not results:
        out["output_tail"] = stdout[-3000:]
    return out
