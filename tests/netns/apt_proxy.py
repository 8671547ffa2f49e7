"""A caching HTTP proxy for Debian's archive, for machines that must not reach the internet themselves.

The whole-chain test (tests/infra/test_whole_chain.py) installs a VM with Debian's real network installer inside a
network namespace that has no way out. The installer and the installed system's apt take every package through this
proxy (the preseed's ``mirror/http/proxy``). The proxy is the one way out: it answers only ``GET``/``HEAD`` for
``http://deb.debian.org/...`` and ``http://security.debian.org/debian-security/...`` (fetched from
``deb.debian.org``), refuses every other host, ``CONNECT`` and every other method with 403, and keeps what it
fetched under ``cache`` (``~/.cache/fleetmind/debian-proxy``):

- files under ``pool/`` and ``by-hash/`` never change at a given path: fetched once, then served from the cache;
- the indexes under ``dists/`` (``InRelease``, ``Release``, ``Packages`` ...) do change: fetched again while the
  archive answers, served from the cache when it does not, so a second run also works offline. An index whose
  SHA-256 is not the one the suite's ``Release`` (as last fetched) lists is still passed on (the client refuses
  it), and recorded in :attr:`Proxied.mismatches`, so a failed install can say that the archive it reached was
  inconsistent rather than leave only the installer's "failed to download a file".

The archive's files are signed (``InRelease``) and checked by the installer and apt, not by the proxy: the proxy
adds no trust. :func:`serve_proxy` listens inside a network namespace (``netns``, a name under /run/netns) while it
fetches from this process's own namespace: the listening socket is made by a thread that entered the namespace for
that one call. Every request is recorded (client address, URL, how it was answered) for the test's assertions.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import http.client
import http.server
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

UPSTREAM = "deb.debian.org"
# host the client names → path prefix it may ask for, and the prefix it has on UPSTREAM
ALLOWED: dict[str, tuple[str, str]] = {
    "deb.debian.org": ("/debian/", "/debian/"),
    "security.debian.org": ("/debian-security/", "/debian-security/"),
}
CLONE_NEWNET = 0x40000000
CHUNK = 1 << 16


class ProxyError(RuntimeError):
    """The proxy could not start (no such namespace, the address is taken)."""


@dataclass
class Proxied:
    """A running proxy: its ``url`` and each request so far as (client address, URL, outcome).

    Outcomes: ``hit`` (from the cache), ``miss`` (fetched and stored), ``refetch`` (an index fetched again),
    ``stale`` (an index from the cache because the archive did not answer), ``upstream <status>``, ``refused``.
    """

    url: str
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    # (index path, SHA-256 served, SHA-256 its Release lists)
    mismatches: list[tuple[str, str, str]] = field(default_factory=list)
    log: Path | None = None  # each request is also appended here, as "client outcome URL"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, client: str, url: str, outcome: str) -> None:
        with self.lock:
            self.requests.append((client, url, outcome))
            if self.log is not None:
                with self.log.open("a") as fh:
                    fh.write(f"{time.strftime('%H:%M:%S')} {client} {outcome} {url}\n")

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, _, outcome in list(self.requests):
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts


def _cache_path(cache: Path, upstream_path: str) -> Path | None:
    """Where ``upstream_path`` is kept, or None for a path that cannot be a file of the archive."""
    parts = [p for p in upstream_path.split("/") if p]
    if not parts or any(p in (".", "..") or p.startswith(".") for p in parts) or upstream_path.endswith("/"):
        return None
    return cache.joinpath(*parts)


def _immutable(upstream_path: str) -> bool:
    return "/pool/" in upstream_path or "/by-hash/" in upstream_path


RELEASE_FILES = ("Release", "InRelease", "Release.gpg")


def listed_sha256(cache: Path, upstream_path: str) -> str | None:
    """The SHA-256 the suite's cached ``Release`` gives for the index at ``upstream_path`` (None: not an index)."""
    parts = upstream_path.strip("/").split("/")
    if len(parts) < 5 or parts[1] != "dists" or parts[-1] in RELEASE_FILES or "by-hash" in parts:
        return None
    suite_dir = cache.joinpath(*parts[:3])
    name = "/".join(parts[3:])
    release = suite_dir / "Release"
    if not release.is_file():
        return None
    in_sha256 = False
    for line in release.read_text(errors="replace").splitlines():
        if not line.startswith(" "):
            in_sha256 = line.startswith("SHA256:")
        elif in_sha256:
            fields = line.split()
            if len(fields) == 3 and fields[2] == name:
                return fields[0]
    return None


class _Handler(http.server.BaseHTTPRequestHandler):
    proxied: Proxied
    cache: Path
    timeout = 120
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _refuse(self, why: str) -> None:
        self.proxied.record(self.client_address[0], self.path, "refused")
        body = f"fleetmind test proxy: {why}\n".encode()
        self.send_response(403)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_CONNECT(self) -> None:
        self._refuse("CONNECT is not proxied; only http://deb.debian.org and http://security.debian.org")

    def do_POST(self) -> None:
        self._refuse("only GET and HEAD")

    do_PUT = do_DELETE = do_PATCH = do_POST

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        host = (url.hostname or "").lower()
        if url.scheme != "http" or host not in ALLOWED or url.port not in (None, 80) or url.query:
            self._refuse(f"not an archive URL: {self.path[:200]}")
            return
        prefix, upstream_prefix = ALLOWED[host]
        if not url.path.startswith(prefix):
            self._refuse(f"not under {prefix} on {host}")
            return
        upstream_path = upstream_prefix + url.path[len(prefix) :]
        cached = _cache_path(self.cache, upstream_path)
        if cached is None:
            self._refuse("not a file of the archive")
            return
        client = self.client_address[0]
        if _immutable(upstream_path) and cached.is_file():
            self.proxied.record(client, self.path, "hit")
            self._send_file(cached)
            return
        try:
            conn = http.client.HTTPConnection(UPSTREAM, 80, timeout=60)
            conn.request("GET", upstream_path, headers={"User-Agent": "fleetmind-test-proxy"})
            resp = conn.getresponse()
        except OSError:
            if cached.is_file():
                self.proxied.record(client, self.path, "stale")
                self._send_file(cached)
            else:
                self.proxied.record(client, self.path, "upstream unreachable")
                self._status(502)
            return
        with contextlib.closing(conn):
            if resp.status != 200:
                self.proxied.record(client, self.path, f"upstream {resp.status}")
                self._status(resp.status if resp.status in (404, 410) else 502)
                return
            self.proxied.record(client, self.path, "refetch" if cached.is_file() else "miss")
            self._relay_and_store(resp, cached)

    def _status(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_file(self, path: Path) -> None:
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command == "HEAD":
            return
        with path.open("rb") as fh:
            shutil.copyfileobj(fh, self.wfile, CHUNK)

    def _check_index(self, dest: Path, fetched: Path) -> None:
        """Record an index that is not the one its suite's Release lists."""
        want = listed_sha256(self.cache, "/" + dest.relative_to(self.cache).as_posix())
        if want is None:
            return
        got = hashlib.sha256(fetched.read_bytes()).hexdigest()
        if got != want:
            with self.proxied.lock:
                self.proxied.mismatches.append((dest.relative_to(self.cache).as_posix(), got, want))

    def _relay_and_store(self, resp: http.client.HTTPResponse, dest: Path) -> None:
        """Stream the archive's answer to the client and, once whole, into the cache (atomically)."""
        length = resp.getheader("Content-Length")
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if length is not None:
            self.send_header("Content-Length", length)
        else:
            self.close_connection = True
        self.end_headers()
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        tmp = Path(tmp_name)
        got = 0
        client_gone = False
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    if self.command != "HEAD" and not client_gone:
                        try:
                            self.wfile.write(chunk)
                        except OSError:
                            client_gone = True  # keep filling the cache: the client will ask again
            if length is None or got == int(length):
                self._check_index(dest, tmp)
                tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up mid-answer asks again; nothing to report


def _listen_in(netns: str | None, host: str, port: int) -> socket.socket:
    """A listening socket in network namespace ``netns`` (None: this one), made by a thread that enters it."""
    if netns is None:
        return socket.create_server((host, port))
    result: list[socket.socket | BaseException] = []

    def enter_and_listen() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{netns}", "rb") as ns:
                if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                    raise ProxyError(f"setns into {netns}: {os.strerror(ctypes.get_errno())}")
            result.append(socket.create_server((host, port)))
        except BaseException as exc:  # handed to the caller
            result.append(exc)

    # the thread ends in the namespace it entered; no other thread of this process ever leaves its own
    thread = threading.Thread(target=enter_and_listen, name=f"listen-in-{netns}")
    thread.start()
    thread.join()
    got = result[0]
    if isinstance(got, BaseException):
        raise ProxyError(f"cannot listen on {host}:{port} in {netns}: {got}") from got
    return got


@contextlib.contextmanager
def serve_proxy(
    cache: Path, host: str, port: int, *, netns: str | None = None, log: Path | None = None
) -> Iterator[Proxied]:
    """Run the proxy on ``host:port`` (inside ``netns`` when given) until the block ends; ``log`` lists requests."""
    cache.mkdir(parents=True, exist_ok=True)
    proxied = Proxied(url=f"http://{host}:{port}", log=log)
    handler = type("Handler", (_Handler,), {"proxied": proxied, "cache": cache})
    sock = _listen_in(netns, host, port)
    server = _Server((host, port), handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    thread = threading.Thread(target=server.serve_forever, name="debian-proxy", daemon=True)
    thread.start()
    try:
        yield proxied
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
