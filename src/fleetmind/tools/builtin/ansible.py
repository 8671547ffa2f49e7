"""``ansible``: an ad-hoc module or a playbook against the inventory through ansible-runner, check mode by default.

An ad-hoc module in check mode changes nothing and is ``safe``; a real run (``check: false``), a module that runs
arbitrary commands (``raw``, ``script``, ``shell``, ``command``) and any playbook — a playbook can turn check mode
off for a task — need approval. Playbooks and extra inventories are files in the workspace. The result lists,
per host, whether each task was ok, changed, failed, skipped or unreachable, with the module's message.
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
from fleetmind.tools.errors import ToolExecutionError

COMMAND_MODULES = {"raw", "script", "shell", "command", "expect", "win_shell", "win_command"}
RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
KEEP = ("msg", "changed", "rc", "stdout", "stderr", "diff", "path", "state", "ping", "failed", "skipped")


def ansible_risk(args: dict[str, Any]) -> str:
    module = str(args.get("module", "")).rsplit(".", 1)[-1]
    if "playbook" in args or not args.get("check", True) or module in COMMAND_MODULES:
        return "approval"
    return "safe"


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
    "(nothing changes) unless check is false.",
    {
        "type": "object",
        "properties": {
            "hosts": {"type": "string", "minLength": 1, "maxLength": 256, "default": "all"},
            "module": {"type": "string", "pattern": r"^[A-Za-z0-9_.]+$", "maxLength": 128},
            "module_args": {"oneOf": [{"type": "string", "maxLength": 10_000}, {"type": "object"}]},
            "playbook": {"type": "string", "maxLength": 1024, "description": "a playbook file in the workspace"},
            "inventory": {"type": "string", "maxLength": 1024, "description": "an inventory file in the workspace"},
            "check": {"type": "boolean", "default": True},
            "timeout_s": {"type": "integer", "minimum": 5, "maximum": 3600, "default": 300},
        },
        "oneOf": [{"required": ["module"]}, {"required": ["playbook"]}],
    },
    risk="safe",
    risk_of=ansible_risk,
    timeout_s=3700.0,
)
def ansible(call: ToolCall) -> dict[str, Any]:
    ctx = call.context
    if "inventory" in call.args:
        inventory = workspace_path(ctx, call.args["inventory"])
    elif ctx.ansible_inventory is not None:
        inventory = ctx.ansible_inventory
    else:
        raise ToolExecutionError("no inventory: pass one from the workspace or set FLEETMIND_TOOLS_ANSIBLE_INVENTORY")
    if not inventory.is_file():
        raise ToolExecutionError(f"inventory {inventory} does not exist")
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
        try:
            runner = ansible_runner.run(
                private_data_dir=run_dir,
                inventory=str(inventory.resolve()),
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
