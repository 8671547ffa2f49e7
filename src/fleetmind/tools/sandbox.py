"""code_runner's sandbox: Python in bubblewrap with no network, a read-only root, one writable folder and limits.

Each run gets a fresh folder (mounted at ``/work``, also ``$HOME`` and ``$TMPDIR``): the only writable place. The
rest of the view is ``/usr`` (and the ``/bin``, ``/lib*`` links) read-only, a private ``/proc`` and a minimal
``/dev``; no ``/etc``, ``/home``, ``/root`` or ``/var``. bwrap unshares every namespace (network: only a loopback
of its own; pid: the code is pid 1's child and dies with it), drops all capabilities, starts a new session (no
TIOCSTI into our terminal) and dies with its parent. Before bwrap is exec'd the child drops to uid/gid 65534 when
we are root (so the process-count limit really counts, and nothing it does is root's) and sets rlimits: address
space, CPU seconds, processes, file size, open files, no core dumps. A wall-clock timer kills the whole process
group; killing bwrap takes the pid namespace with it. bwrap itself starts with an empty environment (only
``PATH`` and ``LANG``) and clears it again for the code, so nothing of the agent's environment can be read, not
even through ``/proc/1/environ`` (bwrap is pid 1 of the box). Interpreter: ``/usr/bin/python3 -I -S`` (isolated,
no site).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fleetmind.tools.base import SandboxLimits
from fleetmind.tools.errors import SandboxError

__all__ = ["SandboxResult", "bwrap_argv", "run_python"]

NOBODY = 65534
OUTPUT_LIMIT = 64 * 1024
#: The whole environment of bwrap and of the code it runs (bwrap adds HOME and TMPDIR for the code).
SANDBOX_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed run did. ``reason`` explains a non-zero end in words (limit hit, signal, timeout)."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    duration_ms: float
    reason: str = ""
    files: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def _root_links() -> list[str]:
    """Mirror the host's /bin, /lib, /lib64, /sbin: symlinks into /usr on merged-/usr systems, else ro-binds."""
    args: list[str] = []
    for name in ("/bin", "/lib", "/lib64", "/lib32", "/sbin"):
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    return args


def bwrap_argv(workdir: Path, python: str, script: str = "/work/main.py") -> list[str]:
    """The bubblewrap command line that runs ``script`` with ``python`` inside the sandbox."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    return [
        bwrap,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/usr",
        "/usr",
        *_root_links(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--bind",
        str(workdir),
        "/work",
        "--chdir",
        "/work",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "HOME",
        "/work",
        "--setenv",
        "TMPDIR",
        "/work",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--setenv",
        "PYTHONDONTWRITEBYTECODE",
        "1",
        python,
        "-I",
        "-S",
        script,
    ]


def _procs_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += 1
    return count


def _limiter(limits: SandboxLimits, drop_to: int | None, nproc: int) -> object:
    memory = limits.memory_mb * 1024 * 1024
    file_size = limits.max_file_mb * 1024 * 1024

    def apply() -> None:  # runs in the child between fork and exec: only async-signal-safe-ish calls
        if drop_to is not None:
            os.setgroups([])
            os.setgid(drop_to)
            os.setuid(drop_to)
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


async def _read_capped(stream: asyncio.StreamReader | None, limit: int = OUTPUT_LIMIT) -> bytes:
    """Keep the first ``limit`` bytes, drain the rest so the child never blocks on a full pipe."""
    if stream is None:
        return b""
    kept = bytearray()
    while chunk := await stream.read(65536):
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    return bytes(kept)


def _explain(code: int, limits: SandboxLimits, timed_out: bool, stderr: str) -> str:
    if timed_out:
        return f"stopped: ran past the wall-clock limit of {limits.wall_s:g}s"
    if code > 128 and code - 128 in signal.valid_signals():
        code = -(code - 128)  # bwrap, as pid 1 of the box, reports a child killed by signal N as 128 + N
    if code < 0:
        sig = signal.Signals(-code)
        if sig in (signal.SIGXCPU, signal.SIGKILL) and "MemoryError" not in stderr:
            return f"killed by {sig.name} (CPU limit {limits.cpu_s}s or memory limit {limits.memory_mb} MB)"
        return f"killed by {sig.name}"
    if code == 0:
        return ""
    if "MemoryError" in stderr:
        return f"ran out of memory (limit {limits.memory_mb} MB)"
    if "BlockingIOError" in stderr or "Resource temporarily unavailable" in stderr:
        return f"hit the process limit ({limits.max_procs} processes)"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return f"exited with code {code}" + (f": {last}" if last else "")


async def run_python(
    code: str, *, limits: SandboxLimits, stdin: str = "", files: dict[str, str] | None = None
) -> SandboxResult:
    """Run ``code`` in a fresh sandbox; ``files`` are written into its folder first (name -> text)."""
    base = Path(tempfile.mkdtemp(prefix="fleetmind-sandbox-"))
    os.chmod(base, 0o711)  # bwrap may run as uid 65534 and must reach work/ (but not list base)
    workdir = base / "work"
    workdir.mkdir()
    try:
        (workdir / "main.py").write_text(code)
        for name, text in (files or {}).items():
            target = (workdir / name).resolve()
            if not target.is_relative_to(workdir.resolve()) or name == "main.py":
                raise SandboxError(f"file name {name!r} must be a plain name inside the sandbox folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        drop_to: int | None = None
        if os.geteuid() == 0:
            drop_to = NOBODY
            for path in (workdir, *workdir.rglob("*")):
                os.chown(path, NOBODY, NOBODY)
            nproc = limits.max_procs + _procs_of(NOBODY)
        else:
            # RLIMIT_NPROC counts all of this user's processes, not only the sandbox's
            nproc = limits.max_procs + _procs_of(os.getuid())
        argv = bwrap_argv(workdir, limits.python)
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_limiter(limits, drop_to, nproc),  # type: ignore[arg-type]
            # bwrap is pid 1 of the box, and its /proc/1/environ is readable from inside: --clearenv only clears
            # the child's environment, so bwrap itself must start without ours (API keys, tokens)
            env=dict(SANDBOX_ENV),
        )
        timed_out = False

        async def talk() -> tuple[bytes, bytes]:
            if proc.stdin is not None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    proc.stdin.write(stdin.encode())
                    await proc.stdin.drain()
                proc.stdin.close()
            out, err = await asyncio.gather(_read_capped(proc.stdout), _read_capped(proc.stderr))
            await proc.wait()
            return out, err

        task = asyncio.ensure_future(talk())
        try:
            out, err = await asyncio.wait_for(asyncio.shield(task), timeout=limits.wall_s)
        except TimeoutError:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = await task
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        duration = (time.perf_counter() - t0) * 1000
        stderr = err.decode(errors="replace")
        code_ = proc.returncode if proc.returncode is not None else -9
        if code_ == 1 and stderr.startswith("bwrap:"):
            raise SandboxError(f"bubblewrap could not start the sandbox: {stderr.strip()}")
        produced = tuple(sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*") if p.name != "main.py"))
        return SandboxResult(
            exit_code=code_,
            stdout=out.decode(errors="replace"),
            stderr=stderr,
            timed_out=timed_out,
            duration_ms=duration,
            reason=_explain(code_, limits, timed_out, stderr),
            files=produced[:100],
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
