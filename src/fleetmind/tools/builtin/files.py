"""``file_read``, ``file_write``, ``file_list``: files inside the workspace folder, and nowhere else.

A path is taken relative to the workspace; absolute paths, ``..`` that climbs out and symlinks that point out are
refused (the real path, symlinks resolved, must lie inside the real workspace), and the final open uses
``O_NOFOLLOW`` so a symlink swapped in after the check is not followed either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fleetmind.tools.base import ToolCall, ToolContext, tool
from fleetmind.tools.errors import ToolExecutionError, ToolRefusedError

MAX_READ = 1_000_000


def workspace_path(ctx: ToolContext, relative: str) -> Path:
    """The real path of ``relative`` inside the workspace, or ToolRefusedError."""
    root = ctx.workspace.resolve()
    if "\x00" in relative:
        raise ToolRefusedError("a path may not contain NUL")
    if Path(relative).is_absolute():
        raise ToolRefusedError(f"{relative!r} is absolute: paths are relative to the workspace")
    target = (root / relative).resolve()
    if target != root and not target.is_relative_to(root):
        raise ToolRefusedError(f"{relative!r} leads outside the workspace")
    return target


PATH = {"type": "string", "minLength": 1, "maxLength": 1024, "description": "Relative to the workspace."}


@tool(
    "file_read",
    "Read a text file from the workspace.",
    {
        "type": "object",
        "properties": {"path": PATH, "max_bytes": {"type": "integer", "minimum": 1, "maximum": MAX_READ}},
        "required": ["path"],
    },
    timeout_s=10.0,
)
def file_read(call: ToolCall) -> dict[str, Any]:
    path = workspace_path(call.context, call.args["path"])
    limit = int(call.args.get("max_bytes", MAX_READ))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ToolExecutionError(f"no file {call.args['path']!r} in the workspace") from None
    except OSError as exc:
        raise ToolRefusedError(f"cannot open {call.args['path']!r}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    return {"path": call.args["path"], "content": data[:limit].decode(errors="replace"), "truncated": len(data) > limit}


@tool(
    "file_write",
    "Write (or append to) a text file in the workspace; folders are created.",
    {
        "type": "object",
        "properties": {
            "path": PATH,
            "content": {"type": "string", "maxLength": 10_000_000},
            "append": {"type": "boolean", "default": False},
        },
        "required": ["path", "content"],
    },
    timeout_s=10.0,
)
def file_write(call: ToolCall) -> dict[str, Any]:
    path = workspace_path(call.context, call.args["path"])
    if path == call.context.workspace.resolve():
        raise ToolRefusedError("cannot write to the workspace folder itself")
    path.parent.mkdir(parents=True, exist_ok=True)
    # the parent may have been swapped for a symlink after the check: check its real path again
    workspace_path(call.context, str(path.parent.relative_to(call.context.workspace.resolve())))
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if call.args.get("append") else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise ToolRefusedError(f"cannot write {call.args['path']!r}: {exc.strerror}") from None
    data = call.args["content"].encode()
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return {"path": call.args["path"], "bytes": len(data), "appended": bool(call.args.get("append"))}


@tool(
    "file_list",
    "List a folder of the workspace (names, kinds, sizes); recursive on request.",
    {
        "type": "object",
        "properties": {"path": {**PATH, "default": "."}, "recursive": {"type": "boolean", "default": False}},
    },
    timeout_s=10.0,
)
def file_list(call: ToolCall) -> dict[str, Any]:
    root = call.context.workspace.resolve()
    folder = workspace_path(call.context, call.args.get("path", "."))
    if not folder.is_dir():
        raise ToolExecutionError(f"{call.args.get('path', '.')!r} is not a folder in the workspace")
    entries = []
    if call.args.get("recursive"):
        # os.walk does not descend into symlinked folders, which could point outside the workspace
        walker = [Path(d, n) for d, dirs, files in os.walk(folder) for n in dirs + files]
    else:
        walker = list(folder.iterdir())
    for p in sorted(walker):
        kind = "link" if p.is_symlink() else "dir" if p.is_dir() else "file"
        size = p.lstat().st_size if kind == "file" else None
        entries.append({"path": str(p.relative_to(root)), "kind": kind, "size": size})
        if len(entries) >= 1000:
            break
    return {"path": call.args.get("path", "."), "entries": entries}
