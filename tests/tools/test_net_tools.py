"""http_get and port_check reach only allowlisted hosts (refused before any connection); dns_lookup answers from
/etc/hosts only."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from fleetmind.tools.base import ToolContext
from fleetmind.tools.runner import ToolRunner
from tests.conftest import serve_http

from .conftest import run_ok


class Handler(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        Handler.hits.append(self.path)
        if self.path == "/redirect-out":
            self.send_response(302)
            self.send_header("Location", "http://localhost:1/elsewhere")
            self.end_headers()
            return
        if self.path == "/redirect-in":
            self.send_response(302)
            self.send_header("Location", "/hello")
            self.end_headers()
            return
        body = b"hello from the test server"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    Handler.hits = []
    with serve_http(Handler) as port:
        yield port


async def test_http_get_allowlisted_only(runner: ToolRunner, context: ToolContext, server: int) -> None:
    context.http_allowlist = ("127.0.0.1",)
    out = await run_ok(runner, "http_get", {"url": f"http://127.0.0.1:{server}/hello"})
    assert out["status"] == 200 and out["text"] == "hello from the test server"
    assert out["content_type"].startswith("text/plain")
    assert (await run_ok(runner, "http_get", {"url": f"http://127.0.0.1:{server}/redirect-in"}))["text"].startswith(
        "hello"
    )
    assert Handler.hits == ["/hello", "/redirect-in", "/hello"]
    # same server, but under a name that is not allowlisted: refused without a connection
    refused = await runner.run("http_get", {"url": f"http://localhost:{server}/hello"}, requester="t")
    assert refused.status == "refused" and "allowlist" in (refused.error or "")
    redirect = await runner.run("http_get", {"url": f"http://127.0.0.1:{server}/redirect-out"}, requester="t")
    assert redirect.status == "refused"
    assert Handler.hits == ["/hello", "/redirect-in", "/hello", "/redirect-out"]
    bad = await runner.run("http_get", {"url": "file:///etc/passwd"}, requester="t")
    assert bad.status == "invalid_arguments"


async def test_port_check(runner: ToolRunner, context: ToolContext) -> None:
    context.http_allowlist = ("127.0.0.1",)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert (await run_ok(runner, "port_check", {"host": "127.0.0.1", "port": port}))["open"] is True
    assert (await run_ok(runner, "port_check", {"host": "127.0.0.1", "port": port}))["open"] is False
    assert (await runner.run("port_check", {"host": "10.1.2.3", "port": 22}, requester="t")).status == "refused"


async def test_dns_lookup_from_hosts_file(runner: ToolRunner) -> None:
    out = await run_ok(runner, "dns_lookup", {"name": "localhost"})
    assert "127.0.0.1" in out["addresses"] and out["source"] == "/etc/hosts"
    assert (await run_ok(runner, "dns_lookup", {"name": "no-such-host.invalid"}))["addresses"] == []
    reverse = await run_ok(runner, "dns_lookup", {"name": "127.0.0.1"})
    assert reverse["loopback"] is True and "localhost" in reverse["names"]
