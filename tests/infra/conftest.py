"""Fixtures for the infrastructure tests: running ansible-playbook, a Debian chroot target, network namespaces.

Everything here is real: ansible-playbook runs the repository's roles, the chroot is a debootstrapped Debian (its
base cached under ~/.cache/fleetmind/debootstrap, copied fresh for each session), the PXE test runs dnsmasq, nginx
and QEMU in private network namespaces. What cannot run here (Nomad, Consul) is covered by --check and by parsing
the configuration the roles render.

``make test`` installs everything these tests use (scripts/apt-test.txt), so a missing program or a failed
debootstrap fails the tests that need it; it never skips them. FLEETMIND_TEST_DEBIAN_MIRROR names another Debian
mirror for the debootstrap (a base made from another mirror is cached apart from the default one); a mirror that
does not work fails the suite.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
PLUGINS = Path(__file__).resolve().parent / "ansible_plugins"
CACHE = Path(os.environ.get("FLEETMIND_CACHE", Path.home() / ".cache" / "fleetmind"))
# Debian 13, what the PXE server installs on the nodes. Its Python is 3.13, not this machine's 3.11: the chroot's pip
# takes cp313 wheels from PyPI (every pin of requirements.lock has one, or is pure Python).
DEBIAN_SUITE = "trixie"
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_MIRROR = os.environ.get("FLEETMIND_TEST_DEBIAN_MIRROR") or DEFAULT_DEBIAN_MIRROR
# What an installed Debian node has that minbase lacks (systemd) and what Ansible itself needs on a target.
BASE_PACKAGES = ["python3", "python3-apt", "python3-venv", "systemd"]
_BASE_KEY = ",".join(BASE_PACKAGES) + ("" if DEBIAN_MIRROR == DEFAULT_DEBIAN_MIRROR else f"@{DEBIAN_MIRROR}")
BASE_CHROOT = CACHE / "debootstrap" / (f"{DEBIAN_SUITE}-minbase-" + hashlib.sha256(_BASE_KEY.encode()).hexdigest()[:10])
APT_ARCHIVES = CACHE / "apt-archives" / DEBIAN_SUITE
# Local package indexes of this machine (see /etc/pip.conf), made visible inside the chroot read-only.
PIP_DIRS = [Path("/opt/wheels"), Path("/opt/pypi"), Path("/opt/pypi-more")]

RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.M,
)


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, chroot, mounts)")


def require_binaries(*names: str) -> None:
    """Fail (never skip) when a program is missing: `make test` installs them (scripts/apt-test.txt)."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.fail(f"needs {', '.join(missing)}, which `make test` installs (scripts/apt-test.txt)")


def ansible_bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in the venv: `make setup` installs it (requirements.lock)")
    return str(path)


@dataclass
class PlaybookRun:
    """The outcome of one ansible-playbook run."""

    returncode: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        return {
            m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP.finditer(self.output)
        }

    def check(self) -> PlaybookRun:
        assert self.returncode == 0, self.output[-6000:]
        return self

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported "changed" (for a readable failure of an idempotence check)."""
        tasks, current = [], ""
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                current = line
            elif line.startswith("changed:") and current:
                tasks.append(f"{current} {line}")
        return tasks


def run_playbook(
    playbook: Path,
    inventory: Path,
    *args: str,
    extra_vars: dict[str, object] | None = None,
    ansible_dir: Path = ANSIBLE_DIR,
    timeout: float = 600,
) -> PlaybookRun:
    """ansible-playbook with the ansible.cfg and roles of ``ansible_dir`` and the test connection plugin."""
    cmd = [ansible_bin("ansible-playbook"), "-i", str(inventory), str(playbook), *args]
    if extra_vars:
        vars_file = inventory.parent / f"extra-vars-{uuid.uuid4().hex[:8]}.yaml"
        vars_file.write_text(yaml.safe_dump(extra_vars))
        cmd += ["--extra-vars", f"@{vars_file}"]
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ansible_dir / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ansible_dir / "roles"),
        "ANSIBLE_CONNECTION_PLUGINS": str(PLUGINS / "connection"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_LOCAL_TEMP": str(inventory.parent / "ansible-local"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }
    proc = subprocess.run(cmd, cwd=ansible_dir, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return PlaybookRun(proc.returncode, proc.stdout + proc.stderr)


def snapshot_checkout(dest: Path) -> Path:
    """A copy of the parts of the checkout the playbook ships (other work may edit the real one meanwhile)."""
    for name in ("src", "ansible", "jobs", "pxe"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "requirements.lock"):
        shutil.copyfile(REPO / name, dest / name)
    return dest


def local_inventory(tmp: Path, children: dict[str, Any] | None = None) -> Path:
    """``tmp/hosts.yaml``: this machine as ``localhost`` (local connection, this Python), plus ``children`` groups."""
    localhost = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory: dict[str, Any] = {"hosts": {"localhost": localhost}}
    if children:
        inventory["children"] = children
    inv = tmp / "hosts.yaml"
    inv.write_text(yaml.safe_dump({"all": inventory}))
    return inv


# -- the Debian chroot -------------------------------------------------------------------------------------------


def _debootstrap_base() -> Path:
    """The cached minimal Debian, made once per machine (about a minute; the suite is part of the folder's name)."""
    if (BASE_CHROOT / "usr/bin/python3").exists():
        return BASE_CHROOT
    require_binaries("debootstrap")
    partial = BASE_CHROOT.with_name(BASE_CHROOT.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            DEBIAN_SUITE,
            str(partial),
            DEBIAN_MIRROR,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        pytest.fail(
            f"debootstrap of {DEBIAN_SUITE} from {DEBIAN_MIRROR} failed with exit code {proc.returncode}:\n"
            f"{(proc.stdout + proc.stderr)[-1500:]}"
        )
    partial.rename(BASE_CHROOT)
    return BASE_CHROOT


def _copy_pip_config(root: Path) -> None:
    """This machine's pip settings (its package mirror and CA bundle), as the chroot's /etc/pip.conf."""
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False)
    lines = ["[global]"]
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        if not key.startswith("global.") or not value:
            continue
        name, value = key.removeprefix("global."), value.strip("'\"")
        if name in ("cert", "constraint"):
            # the files themselves go into the chroot (the CA bundle holds this machine's proxy CA)
            copy = root / "etc/fleetmind-test" / Path(value).name
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(value, copy)
            value = "/" + str(copy.relative_to(root))
        lines.append(f"{name} = {value}")
    (root / "etc/pip.conf").write_text("\n".join(lines) + "\n")


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture(scope="session")
def debian_chroot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh copy of the cached Debian base with /proc, /dev, the apt cache and the local PyPI mirror mounted.

    Services are never started inside (policy-rc.d says no), so installing dnsmasq or nginx cannot touch this
    machine's network; Ansible's systemd module sees a chroot and only enables units.
    """
    require_root()
    require_binaries("chroot", "mount", "umount")
    base = _debootstrap_base()
    root = tmp_path_factory.mktemp("chroot") / "root"
    subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(root)], check=True)
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# no service starts inside the test chroot\nexit 101\n")
    policy.chmod(0o755)
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    _copy_pip_config(root)
    (APT_ARCHIVES / "partial").mkdir(parents=True, exist_ok=True)
    mounts: list[Path] = []
    try:
        _mount("-t", "proc", "proc", str(root / "proc"))
        mounts.append(root / "proc")
        _mount("--bind", "/dev", str(root / "dev"))
        mounts.append(root / "dev")
        _mount("--bind", str(APT_ARCHIVES), str(root / "var/cache/apt/archives"))
        mounts.append(root / "var/cache/apt/archives")
        for d in PIP_DIRS:
            if d.is_dir():
                target = root / d.relative_to("/")
                target.mkdir(parents=True, exist_ok=True)
                _mount("--bind", "-o", "ro", str(d), str(target))
                mounts.append(target)
        yield root
    finally:
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", str(m)], check=False, capture_output=True)
        if not any(os.path.ismount(m) for m in mounts):
            shutil.rmtree(root, ignore_errors=True)


def chroot_inventory(tmp: Path, root: Path) -> Path:
    """The chroot as a control node (and PXE server) of a one-node cluster."""
    host = {
        "ansible_host": str(root),
        "ansible_connection": "fleetmind_chroot",
        "ansible_python_interpreter": "/usr/bin/python3",
        # an absolute path: the plugin runs commands from /, where a quoted "~/..." would not be the home folder
        "ansible_remote_tmp": "/root/.ansible/tmp",
    }
    inv = tmp / "hosts.yaml"
    inv.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "control": {"hosts": {"target": host}},
                        "pxe_servers": {"hosts": {"target": None}},
                    }
                }
            }
        )
    )
    return inv
