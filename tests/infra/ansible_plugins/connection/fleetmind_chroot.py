"""An Ansible connection plugin that runs modules inside a Debian chroot, for the infrastructure tests.

ansible-core ships no chroot connection (community.general does, and it cannot be installed offline here), so the
tests carry this small one: commands run through ``chroot <dir> /bin/sh -c``, files are copied under ``<dir>``.
The chroot's directory is the inventory host's ``ansible_host``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.connection import ConnectionBase

DOCUMENTATION = """
name: fleetmind_chroot
short_description: Run tasks inside a local chroot directory (fleetmind's tests)
description:
  - Runs commands with chroot(8) and copies files under the chroot directory. Needs root.
author: fleetmind
options:
  chroot_dir:
    description: The chroot's root directory.
    vars:
      - name: ansible_host
"""


class Connection(ConnectionBase):
    """Local chroot connection; pipelining on, since a chroot needs no temporary files to pass stdin."""

    transport = "fleetmind_chroot"
    has_pipelining = True

    def _root(self) -> Path:
        root = Path(str(self.get_option("chroot_dir")))
        if not (root / "bin/sh").exists():
            raise AnsibleError(f"{root} is not a chroot (no bin/sh)")
        return root

    def _connect(self) -> Connection:
        self._connected = True
        return self

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        proc = subprocess.run(
            ["chroot", str(self._root()), "/bin/sh", "-c", cmd],
            input=in_data,
            capture_output=True,
            check=False,
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        )
        return proc.returncode, proc.stdout, proc.stderr

    def _inside(self, path: str) -> Path:
        if path.startswith("~/"):  # root's home: the only user these tests log in as
            path = "/root/" + path[2:]
        return self._root() / path.lstrip("/")

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        shutil.copyfile(in_path, self._inside(out_path))

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        shutil.copyfile(self._inside(in_path), out_path)

    def close(self, *args: Any, **kwargs: Any) -> None:
        self._connected = False
