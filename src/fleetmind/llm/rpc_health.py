"""Health sidecar of a ``ggml-rpc-server`` worker: says over HTTP whether the worker listens and whether it is free.

A worker serves one client at a time with a listen backlog of one, so probing its port (a TCP check) queues
connections that are never accepted while an expert holds it: the probes start timing out and check_restart would
kill a worker in use. This sidecar never touches the worker's port; it reads the kernel's socket tables
(``/proc/net/tcp``, ``/proc/net/tcp6``) and answers ``GET /health`` with Consul's HTTP check semantics: 200 when the
port is listening and no client is connected, 429 (Consul "warning", left out of ``?passing`` discovery and ignored by
``check_restart { ignore_warnings = true }``) while a client is connected, 503 when nothing listens. Run it as
``python -m fleetmind.llm.rpc_health --rpc-port P --port H`` beside the worker (jobs/llamacpp-rpc.nomad.hcl). Linux
only, as the cluster's nodes are.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TCP_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
LISTEN, ESTABLISHED = "0A", "01"


@dataclass(frozen=True)
class WorkerState:
    """What the socket tables say about one local TCP port."""

    listening: bool
    clients: int

    @property
    def status(self) -> int:
        if not self.listening:
            return 503
        return 429 if self.clients else 200


def port_state(port: int, tables: tuple[Path, ...] = TCP_TABLES) -> WorkerState:
    """Whether something listens on local TCP ``port`` and how many connections to it are established."""
    listening, clients = False, 0
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue  # no IPv6 on this host
        for line in lines:
            fields = line.split()
            if len(fields) < 4:
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port != port:
                continue
            if fields[3] == LISTEN:
                listening = True
            elif fields[3] == ESTABLISHED:
                clients += 1
    return WorkerState(listening, clients)


def make_handler(rpc_port: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/health":
                self.send_error(404)
                return
            state = port_state(rpc_port)
            body = json.dumps({"rpc_port": rpc_port, "listening": state.listening, "clients": state.clients}).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a probe every few seconds would drown the task's log

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fleetmind.llm.rpc_health", description=__doc__.split("\n")[0])
    parser.add_argument("--rpc-port", type=int, required=True, help="the ggml-rpc-server port to report on")
    parser.add_argument("--port", type=int, required=True, help="port this sidecar serves /health on")
    parser.add_argument("--host", default="127.0.0.1", help="address this sidecar binds")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.rpc_port))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
