"""``EmbeddedCluster``: the embedded orchestrator and registry behind their Nomad and Consul APIs.

``fleetmind up`` starts it, submits the jobs through :class:`~fleetmind.cluster.client.ClusterClient`
exactly as on a real cluster, and stops it on Ctrl-C. Both APIs answer only to the cluster token (``token``).
The two uvicorn servers share the caller's event loop and leave its signal handling alone; the sockets are bound
before serving so a busy port is an immediate, clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path

import uvicorn

from fleetmind.cluster.embedded.api import create_consul_app, create_nomad_app
from fleetmind.cluster.embedded.orchestrator import Orchestrator
from fleetmind.cluster.embedded.registry import Registry
from fleetmind.cluster.errors import ClusterError
from fleetmind.cluster.token import new_token
from fleetmind.stack_settings import default

log = logging.getLogger(__name__)
_ANY = ("0.0.0.0", "::", "")


class _Server(uvicorn.Server):
    """A uvicorn server that does not take over SIGINT/SIGTERM: the embedding program owns those."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(host: str, port: int, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ClusterError(
            f"the embedded {what} API cannot listen on {host}:{port}: {exc.strerror or exc} "
            f"(is a real {what} agent or another `fleetmind up` running?)"
        ) from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


class EmbeddedCluster:
    """Single-node orchestrator + registry serving the Nomad and Consul API subsets fleetmind uses."""

    def __init__(
        self,
        *,
        logs_dir: Path,
        host: str = default("host"),
        nomad_port: int = default("nomad_port"),
        consul_port: int = default("consul_port"),
        token: str | None = None,
        node_meta: Mapping[str, str] | None = None,
    ) -> None:
        """``token`` is the one both APIs answer to (``fleetmind up`` keeps it in the state dir); without it a
        fresh one is made for this run (read it from :attr:`token`). ``node_meta`` overrides entries of the node's
        meta, which by default holds this machine's placement class (:mod:`.node`)."""
        self.logs_dir = Path(logs_dir)
        self.token = token or new_token()
        self.host = host
        self._ports = {"nomad": nomad_port, "consul": consul_port}
        # Services are advertised on an address peers can dial, never the wildcard.
        self.advertise = "127.0.0.1" if host in _ANY else host
        self.registry = Registry(node_address=self.advertise)
        self.orchestrator = Orchestrator(
            logs_dir=self.logs_dir, registry=self.registry, address=self.advertise, node_meta=node_meta
        )
        self._servers: list[tuple[_Server, asyncio.Task[None]]] = []

    @property
    def nomad_addr(self) -> str:
        return f"http://{self.advertise}:{self._ports['nomad']}"

    @property
    def consul_addr(self) -> str:
        return f"{self.advertise}:{self._ports['consul']}"

    async def start(self) -> None:
        """Serve both APIs; returns once both listen."""
        if self._servers:
            raise ClusterError("the embedded cluster is already started")
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        apps = {
            "nomad": create_nomad_app(self.orchestrator, token=self.token, advertise=self.advertise),
            "consul": create_consul_app(self.registry, token=self.token),
        }
        sockets = {}
        try:
            for what in ("nomad", "consul"):
                sockets[what] = _listen(self.host, self._ports[what], what.capitalize())
        except ClusterError:
            for sock in sockets.values():
                sock.close()
            raise
        for what, sock in sockets.items():
            self._ports[what] = int(sock.getsockname()[1])
            config = uvicorn.Config(
                apps[what],
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
            server = _Server(config)
            task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name=f"{what} api")
            self._servers.append((server, task))
        while not all(server.started for server, _ in self._servers):
            failed = [t for _, t in self._servers if t.done()]
            if failed:
                await self.stop()
                raise ClusterError(f"an embedded API server failed to start: {failed[0].exception()!r}")
            await asyncio.sleep(0.01)
        log.info("embedded cluster: Nomad API %s, Consul API %s", self.nomad_addr, self.consul_addr)

    async def stop(self) -> None:
        """Stop every task (no process left behind), then the check runners and the API servers."""
        try:
            await self.orchestrator.shutdown()
        finally:
            await self.registry.close()
            for server, _ in self._servers:
                server.should_exit = True
            for _, task in self._servers:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await task
            self._servers = []
