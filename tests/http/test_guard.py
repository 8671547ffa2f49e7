"""The HTTP kit's guard in-process: which Host and Origin pass, the body cap, WebSocket handshakes, streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import StreamingResponse
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fleetmind.http import install
from fleetmind.http.guard import host_of, origin_host


def make_app(**kwargs: object) -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/read")
    async def read() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"part {i}\n".encode()

        return StreamingResponse(parts(), media_type="text/plain")

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        await socket.send_text("hello")
        await socket.close()

    install(app, **kwargs)  # type: ignore[arg-type]
    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    # an in-process client reports the URL's host as the server's address, like a socket bound to 127.0.0.1
    with TestClient(make_app(max_body=1024), base_url="http://127.0.0.1:8000") as http:
        yield http


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("127.0.0.1:8000", "127.0.0.1"),
        ("LOCALHOST", "localhost"),
        ("localhost.:80", "localhost"),
        ("[::1]:4646", "::1"),
        ("::1", "::1"),
        ("evil.example:80", "evil.example"),
        ("a:b", None),
        ("[::1]x", None),
        ("", None),
    ],
)
def test_host_of(value: str, host: str | None) -> None:
    assert host_of(value) == host


def test_origin_host() -> None:
    assert origin_host("http://LocalHost:8000") == "localhost"
    assert origin_host("https://[::1]:1") == "::1"
    assert origin_host("null") is None
    assert origin_host("file://") is None
    assert origin_host("http://h:99999") is None


def test_loopback_and_own_host_pass(client: TestClient) -> None:
    for host in ("127.0.0.1:8000", "localhost:1", "[::1]:8000", "127.0.0.1"):
        assert client.post("/echo", content=b"x", headers={"Host": host}).json() == {"size": 1}, host
    same_page = {"Origin": "http://localhost:8000"}
    assert client.post("/echo", content=b"x", headers=same_page).status_code == 200


def test_foreign_host_and_origin_are_refused_on_writes_only(client: TestClient) -> None:
    rebound = client.post("/echo", content=b"x", headers={"Host": "evil.example"})
    assert rebound.status_code == 403
    assert rebound.json()["error"] == {
        "message": "The Host header names a host this server does not answer to.",
        "type": "invalid_request_error",
        "param": None,
        "code": "forbidden_host",
    }
    for method in ("PUT", "PATCH", "DELETE"):
        assert client.request(method, "/echo", headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post("/echo", headers={"Origin": "null"}).json()["error"]["code"] == "forbidden_origin"
    # reads are not state-changing: the page cannot read the answer anyway (no CORS headers)
    assert client.get("/read", headers={"Host": "evil.example", "Origin": "http://evil.example"}).status_code == 200


def test_allowed_hosts_extend_the_list() -> None:
    with TestClient(make_app(allowed_hosts=["fleet.lan"]), base_url="http://127.0.0.1") as http:
        headers = {"Host": "fleet.lan:8000", "Origin": "https://fleet.lan"}
        assert http.post("/echo", content=b"x", headers=headers).status_code == 200
        assert http.post("/echo", content=b"x", headers={"Host": "other.lan"}).status_code == 403


def test_check_reads_guards_every_method() -> None:
    with TestClient(make_app(check_reads=True), base_url="http://127.0.0.1") as http:
        assert http.get("/read", headers={"Host": "evil.example"}).status_code == 403
        assert http.get("/read").status_code == 200


def test_body_cap(client: TestClient) -> None:
    assert client.post("/echo", content=b"x" * 1024).json() == {"size": 1024}
    big = client.post("/echo", content=b"x" * 1025)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"

    def chunks(n: int) -> Iterator[bytes]:
        for _ in range(n):
            yield b"x" * 300

    assert client.post("/echo", content=chunks(3)).json() == {"size": 900}
    assert client.post("/echo", content=chunks(4)).status_code == 413


def test_streaming_answers_pass_untouched(client: TestClient) -> None:
    assert client.get("/stream").text == "part 0\npart 1\npart 2\n"


def test_websocket_handshake_checks_host_and_origin() -> None:
    with TestClient(make_app()) as http:
        with http.websocket_connect("/ws", headers={"Origin": "http://testserver"}) as ws:
            assert ws.receive_text() == "hello"
        for headers in ({"Origin": "http://evil.example"}, {"Host": "evil.example"}):
            with pytest.raises(WebSocketDisconnect) as refused:
                with http.websocket_connect("/ws", headers=headers):
                    pass
            assert refused.value.code == 1008


def test_a_bad_cap_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="max_body"):
        make_app(max_body=0)
