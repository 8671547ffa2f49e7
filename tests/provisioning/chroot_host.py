"""A throwaway test host for provisioning runs: an overlay of the cached debootstrap Debian, reached by chroot.

The base is the one tests/infra builds and caches (``~/.cache/fleetmind/debootstrap``), and the Ansible
connection is that folder's ``fleetmind_chroot`` plugin; both are imported from there, not copied. Each host is
an overlayfs mount whose writable layer lies under the test's tmp_path, so a run changes only its own host and
the cached base stays as it was (a full copy, ``cp -a``, when overlayfs is not available). Nothing is mounted
inside the host (no /proc, no apt cache): a provisioning test needs none of it, and a host with one mount has
one thing to undo. On exit, any process still rooted in the host is killed and reported, then the host is
unmounted (never lazily: a busy mount is an error, not something to leave behind) and removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.infra.conftest import PLUGINS, _debootstrap_base, require_binaries, require_root

CONNECTION_PLUGINS = PLUGINS / "connection"


@dataclass
class ChrootHost:
    """A Debian root folder to provision; ``upper`` is the overlay's writable layer (None for a full copy)."""

    root: Path
    upper: Path | None
    base: Path

    def run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        """A command inside the host, as the node's own administrator would run it."""
        return subprocess.run(
            ["chroot", str(self.root), *cmd],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        )

    def write(self, path: str, text: str) -> None:
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def host_vars(self) -> dict[str, str]:
        """Inventory vars that make Ansible reach this host through the chroot connection."""
        return {
            "ansible_connection": "fleetmind_chroot",
            "ansible_host": str(self.root),
            "ansible_python_interpreter": "/usr/bin/python3",
            # absolute: the plugin runs commands from /, where "~/.ansible/tmp" would not be root's home
            "ansible_remote_tmp": "/root/.ansible/tmp",
        }


def write_host_vars(inventory: Path, hostname: str, host: ChrootHost) -> Path:
    """``host_vars/<hostname>.yaml`` beside the API's inventory: the operator's word on how to reach the node.

    Ansible ranks these above the vars in the inventory file, so the address the node called home with stays
    in the inventory (the API owns that file) while the connection goes to the chroot.
    """
    path = inventory.parent / "host_vars" / f"{hostname}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(host.host_vars()))
    return path


def processes_in(root: Path) -> list[int]:
    """Pids of processes whose root directory is ``root`` (what a chroot leaves running)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(proc / "root") == str(root):
                pids.append(int(proc.name))
    return pids


def _overlay(base: Path, work: Path) -> tuple[Path, Path | None]:
    root, upper, scratch = work / "root", work / "upper", work / "work"
    for d in (root, upper, scratch):
        d.mkdir(parents=True)
    proc = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={base},upperdir={upper},workdir={scratch}", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == 0:
        return root, upper
    # no overlayfs here (an unprivileged container, or tmp itself on overlayfs): pay for a full copy
    root.rmdir()
    subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(root)], check=True)
    return root, None


@contextlib.contextmanager
def chroot_host(work: Path) -> Iterator[ChrootHost]:
    """A fresh host under ``work`` (skips the test when not root or debootstrap is missing and not cached)."""
    require_root()
    require_binaries("chroot", "mount", "umount")
    base = _debootstrap_base()
    root, upper = _overlay(base, work)
    host = ChrootHost(root=root, upper=upper, base=base)
    try:
        yield host
    finally:
        left = processes_in(root)
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for _ in range(50):
            if not processes_in(root):
                break
            time.sleep(0.1)
        if upper is not None:
            subprocess.run(["umount", str(root)], check=True, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        assert not left, f"processes left running inside the test host: {left}"
