"""file_read/file_write/file_list stay inside the workspace: no absolute paths, no .., no symlinks out."""

from __future__ import annotations

import os
from pathlib import Path

from fleetmind.tools.base import ToolContext
from fleetmind.tools.runner import ToolRunner

from .conftest import run_ok


async def test_write_read_append_list(runner: ToolRunner, context: ToolContext) -> None:
    out = await run_ok(runner, "file_write", {"path": "notes/today.txt", "content": "one\n"})
    assert out["bytes"] == 4 and (context.workspace / "notes" / "today.txt").read_text() == "one\n"
    await run_ok(runner, "file_write", {"path": "notes/today.txt", "content": "two\n", "append": True})
    read = await run_ok(runner, "file_read", {"path": "notes/today.txt"})
    assert read["content"] == "one\ntwo\n" and not read["truncated"]
    assert (await run_ok(runner, "file_read", {"path": "notes/today.txt", "max_bytes": 3}))["truncated"]
    listing = await run_ok(runner, "file_list", {"recursive": True})
    assert {(e["path"], e["kind"]) for e in listing["entries"]} == {("notes", "dir"), ("notes/today.txt", "file")}
    missing = await runner.run("file_read", {"path": "nope.txt"}, requester="t")
    assert missing.status == "error"


async def test_escapes_are_refused(runner: ToolRunner, context: ToolContext, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    os.symlink(secret, context.workspace / "link.txt")
    os.symlink(tmp_path, context.workspace / "outside")
    attempts = [
        ("file_read", {"path": "/etc/passwd"}),
        ("file_read", {"path": "../secret.txt"}),
        ("file_read", {"path": "link.txt"}),
        ("file_read", {"path": "outside/secret.txt"}),
        ("file_write", {"path": "../evil.txt", "content": "x"}),
        ("file_write", {"path": "outside/evil.txt", "content": "x"}),
        ("file_write", {"path": "link.txt", "content": "overwritten"}),
        ("file_list", {"path": "outside"}),
        ("file_list", {"path": "a/../../"}),
    ]
    for name, args in attempts:
        outcome = await runner.run(name, args, requester="t")
        assert outcome.status == "refused", (name, args, outcome.status, outcome.output)
        assert "outside the workspace" in (outcome.error or "") or "absolute" in (outcome.error or "")
    assert secret.read_text() == "top secret" and not (tmp_path / "evil.txt").exists()
    # a recursive listing shows the symlink but does not walk through it
    listing = await run_ok(runner, "file_list", {"recursive": True})
    assert not any("secret" in e["path"] for e in listing["entries"])
