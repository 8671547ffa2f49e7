"""A Debian package repository on the control host, for test hosts that have no way out.

Test hosts (tests/netns/hosts.py) have no default route by design, so a node's ``apt`` cannot reach Debian. The
control host serves them the packages this machine already has instead: :func:`build_repository` lays the ``.deb``
files of a folder (the trixie apt cache tests/infra fills, ``~/.cache/fleetmind/apt-archives/trixie``) out as a
plain Debian repository (``dists/<suite>/Release``, ``dists/<suite>/main/binary-<arch>/Packages``, ``pool/``), and
:func:`serve_repository` serves it over HTTP on the bridge address, recording every request (who asked for what).

The repository is unsigned: a node takes it with ``[trusted=yes]`` (the ``common`` role's
``common_apt_mirror_trusted``). Its packages are Debian's own, checked by apt when they were first downloaded into
the cache. The ``.deb`` files are hard links (or copies across file systems), so nothing in the cache is changed.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path


class MirrorError(RuntimeError):
    """The repository could not be built (no packages, a broken .deb)."""


def _digests(path: Path) -> tuple[int, str, str]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return path.stat().st_size, md5.hexdigest(), sha256.hexdigest()


def build_repository(debs: Path, dest: Path, *, suite: str, arch: str = "amd64", component: str = "main") -> Path:
    """A repository under ``dest`` holding every ``*.deb`` of ``debs``; returns ``dest``."""
    found = sorted(debs.glob("*.deb"))
    if not found:
        raise MirrorError(f"no .deb files in {debs}")
    pool = dest / "pool" / component
    pool.mkdir(parents=True, exist_ok=True)
    stanzas = []
    for deb in found:
        target = pool / deb.name
        if not target.exists():
            try:
                os.link(deb, target)
            except OSError:
                shutil.copyfile(deb, target)
        proc = subprocess.run(["dpkg-deb", "-f", str(target)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise MirrorError(f"{deb}: not a package: {proc.stderr.strip()}")
        size, md5, sha256 = _digests(target)
        control = proc.stdout.rstrip("\n")
        stanzas.append(
            f"{control}\nFilename: {target.relative_to(dest)}\nSize: {size}\nMD5sum: {md5}\nSHA256: {sha256}\n"
        )
    index_rel = f"{component}/binary-{arch}/Packages"
    index = dest / "dists" / suite / index_rel
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text("\n".join(stanzas))
    size, md5, sha256 = _digests(index)
    (dest / "dists" / suite / "Release").write_text(
        "Origin: fleetmind-test\n"
        "Label: fleetmind-test\n"
        f"Suite: {suite}\n"
        f"Codename: {suite}\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\n"
        f"Architectures: {arch}\n"
        f"Components: {component}\n"
        f"MD5Sum:\n {md5} {size} {index_rel}\n"
        f"SHA256:\n {sha256} {size} {index_rel}\n"
    )
    return dest


@dataclass
class Served:
    """A repository being served: its ``url`` and the ``requests`` made so far as (client address, path)."""

    url: str
    requests: list[tuple[str, str]] = field(default_factory=list)

    def paths_from(self, client: str) -> list[str]:
        return [path for ip, path in self.requests if ip == client]


class _Handler(http.server.SimpleHTTPRequestHandler):
    served: Served

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.served.requests.append((self.client_address[0], self.path))
        super().do_GET()

    def do_HEAD(self) -> None:
        self.served.requests.append((self.client_address[0], self.path))
        super().do_HEAD()


@contextlib.contextmanager
def serve_repository(root: Path, host: str, port: int = 0) -> Iterator[Served]:
    """Serve ``root`` at ``http://host:port/`` (read-only, a thread of this process) until the block ends."""
    served = Served(url="")
    handler = type("Handler", (_Handler,), {"served": served})
    server = http.server.ThreadingHTTPServer((host, port), partial(handler, directory=str(root)))
    served.url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="apt-mirror", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
