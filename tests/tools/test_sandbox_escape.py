"""The escape suite: code_runner must fail safely, with a clear error, at everything that reaches outside its box.

Each attempt runs the real sandbox (bubblewrap) through the runner, like a model's call, and then the host is
checked: the secret is not in the output, the marker files were not created, the listener heard nothing, no
process was left behind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path

import pytest

from fleetmind.tools.base import SandboxLimits, ToolContext
from fleetmind.tools.runner import ToolOutcome, ToolRunner
from fleetmind.tools.sandbox import NOBODY

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


@pytest.fixture(autouse=True)
def tight_limits(context: ToolContext) -> None:
    context.sandbox = SandboxLimits(memory_mb=256, cpu_s=3, wall_s=4.0, max_procs=16)


def exists(path: str | Path) -> bool:
    return Path(path).exists()


async def escape(runner: ToolRunner, code: str) -> ToolOutcome:
    return await runner.run("code_runner", {"code": code}, requester="escape-suite")


async def test_cannot_read_etc_shadow(runner: ToolRunner) -> None:
    outcome = await escape(runner, "print(open('/etc/shadow').read())")
    assert outcome.status == "error" and "FileNotFoundError" in (outcome.error or "")
    listing = await escape(runner, "import os; print(sorted(os.listdir('/')))")
    assert listing.status == "ok" and "etc" not in listing.output["stdout"] and "root" not in listing.output["stdout"]
    assert "home" not in listing.output["stdout"]


async def test_cannot_write_outside_its_folder(runner: ToolRunner, tmp_path: Path) -> None:
    marker = tmp_path / "written-by-sandbox"
    for target in ("/usr/pwned", str(marker), "/tmp/pwned-by-sandbox", "/proc/sys/kernel/hostname"):
        outcome = await escape(runner, f"open({target!r}, 'w').write('x')")
        assert outcome.status == "error", target
        assert any(e in (outcome.error or "") for e in ("Read-only file system", "No such file", "Permission denied"))
    assert not any(exists(p) for p in (marker, "/tmp/pwned-by-sandbox", "/usr/pwned"))
    inside = await runner.run(
        "code_runner", {"code": "open('out.txt', 'w').write('fine'); print(open('out.txt').read())"}, requester="t"
    )
    assert inside.status == "ok" and inside.output["stdout"].strip() == "fine"


async def test_cannot_open_a_network_connection(runner: ToolRunner) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        code = (
            "import socket\n"
            f"s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "s.sendall(b'exfiltrated')\n"
        )
        outcome = await escape(runner, code)
        assert outcome.status == "error" and "ConnectionRefusedError" in (outcome.error or "")
        with pytest.raises(TimeoutError):
            listener.accept()
    dns = await escape(runner, "import socket; socket.create_connection(('example.org', 80), timeout=2)")
    assert dns.status == "error" and "gaierror" in (dns.error or "")


def bomb_processes(marker: str) -> list[int]:
    """Live (non-zombie) processes of uid nobody whose command line carries ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_text() and proc.stat().st_uid == NOBODY:
                state = (proc / "stat").read_text().rsplit(") ", 1)[1][0]
                if state != "Z":
                    found.append(int(proc.name))
        except (OSError, IndexError):
            continue
    return found


async def test_fork_bomb_hits_the_process_limit_and_leaves_nothing(runner: ToolRunner) -> None:
    outcome = await escape(runner, "import os\nwhile True:\n    os.fork()\n")
    assert outcome.status == "error"
    assert "process limit" in (outcome.error or "") or "wall-clock" in (outcome.error or "")
    # every process of the box is gone once its pid 1 is: poll only as a hang guard
    for _ in range(200):
        if not bomb_processes("/work/main.py"):
            break
        await asyncio.sleep(0.05)
    assert bomb_processes("/work/main.py") == []


async def test_cannot_allocate_2_gb(runner: ToolRunner) -> None:
    outcome = await escape(runner, "block = bytearray(2 * 1024 ** 3)\nprint('allocated')")
    assert outcome.status == "error" and "out of memory (limit 256 MB)" in (outcome.error or "")


async def test_runaway_code_is_stopped(runner: ToolRunner) -> None:
    wall = await escape(runner, "import time\ntime.sleep(60)")
    assert wall.status == "error" and "wall-clock limit of 4s" in (wall.error or "")
    cpu = await runner.run("code_runner", {"code": "while True: pass", "timeout_s": 30}, requester="t")
    assert cpu.status == "error" and ("CPU limit" in (cpu.error or "") or "wall-clock" in (cpu.error or ""))


async def test_c_extensions_and_os_system_stay_inside(runner: ToolRunner, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    code = (
        "import ctypes, os, posix\n"
        f"print('ctypes', ctypes.CDLL(None).system(b'touch {marker} && echo TOUCHED'))\n"
        f"print('posix', posix.system('cat /etc/shadow; touch {marker}'))\n"
        f"print('os', os.system('id -u'))\n"
    )
    outcome = await escape(runner, code)
    # the calls themselves may run, but only inside the box: the host is untouched
    assert not marker.exists()
    text = str(outcome.output) + str(outcome.error)
    assert "TOUCHED" not in text and "root:" not in text
    assert "65534" in text  # `id -u` inside the box: nobody, not root


async def test_cannot_signal_host_processes(runner: ToolRunner) -> None:
    outcome = await escape(runner, f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)")
    assert outcome.status == "error" and "ProcessLookupError" in (outcome.error or "")
