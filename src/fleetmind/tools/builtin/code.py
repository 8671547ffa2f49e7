"""``code_runner`` (Python in the bubblewrap sandbox) and ``shell`` (a command on this machine, approval always).

``code_runner`` is ``safe``: the sandbox, not the policy, is what contains it (see :mod:`fleetmind.tools.sandbox`).
A run that fails — an exception, a limit hit, the time limit — is reported as the tool's error with the reason in
words and the tail of its output. ``shell`` runs ``/bin/sh -c`` in the workspace with no sandbox, so no policy can
let it run without a person's approval.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import replace
from typing import Any

from fleetmind.tools.base import ToolCall, tool
from fleetmind.tools.errors import ToolExecutionError
from fleetmind.tools.sandbox import run_python

TAIL = 4000


def _tail(text: str, n: int = TAIL) -> str:
    return text if len(text) <= n else "…" + text[-n:]


@tool(
    "code_runner",
    "Run a Python 3 program in an isolated sandbox (no network, read-only system, its own temp folder, CPU/memory/"
    "time limits) and return its stdout/stderr. Print the results you need.",
    {
        "type": "object",
        "properties": {
            "code": {"type": "string", "minLength": 1, "maxLength": 100_000, "description": "Python source."},
            "stdin": {"type": "string", "maxLength": 100_000, "default": ""},
            "files": {
                "type": "object",
                "description": "Extra text files to place next to the program (name -> content).",
                "additionalProperties": {"type": "string"},
            },
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 120},
        },
        "required": ["code"],
    },
    timeout_s=150.0,
)
async def code_runner(call: ToolCall) -> dict[str, Any]:
    limits = call.context.sandbox
    if "timeout_s" in call.args:
        limits = replace(limits, wall_s=min(float(call.args["timeout_s"]), limits.wall_s))
    result = await run_python(
        call.args["code"], limits=limits, stdin=call.args.get("stdin", ""), files=call.args.get("files")
    )
    if not result.ok:
        raise ToolExecutionError(
            f"the program failed: {result.reason}\n--- stderr ---\n{_tail(result.stderr)}\n"
            f"--- stdout ---\n{_tail(result.stdout)}"
        )
    return {
        "exit_code": result.exit_code,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "duration_ms": round(result.duration_ms, 1),
        "files": list(result.files),
    }


@tool(
    "shell",
    "Run a shell command on this machine in the workspace folder (needs a person's approval every time).",
    {
        "type": "object",
        "properties": {
            "command": {"type": "string", "minLength": 1, "maxLength": 10_000},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
        },
        "required": ["command"],
    },
    risk="approval",
    always_approve=True,
    timeout_s=620.0,
)
async def shell(call: ToolCall) -> dict[str, Any]:
    timeout = float(call.args.get("timeout_s", call.context.shell_timeout_s))
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        call.args["command"],
        cwd=call.context.workspace,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise ToolExecutionError(f"the command ran past {timeout:g}s and was killed") from None
    return {
        "exit_code": proc.returncode,
        "stdout": _tail(out.decode(errors="replace"), 64_000),
        "stderr": _tail(err.decode(errors="replace"), 16_000),
    }
