"""Job events leave the provisioning API for Mission Control's stream: in order, with the key, never blocking a job.

The receiver here is a plain HTTP server on loopback that records what it is sent; the end-to-end path into a
real Mission Control page is in tests/e2e.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from fleetmind.provisioning.settings import ProvisionSettings
from fleetmind.security import KeyStore
from tests.conftest import free_port, serve_http
from tests.provisioning.conftest import body, make_settings, start_api


class Receiver:
    """What the loopback server was sent: (Authorization header, body) per POST."""

    def __init__(self) -> None:
        self.received: list[tuple[str | None, dict[str, Any]]] = []
        self.url = ""

    def kinds(self) -> list[str]:
        return [event["kind"] for _, event in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            r.received.append((self.headers.get("Authorization"), json.loads(self.rfile.read(length))))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serve_http(Handler) as port:
        r.url = f"http://127.0.0.1:{port}/api/events"
        yield r


async def test_job_events_reach_the_stream_in_order(tmp_path: Path, key_store: KeyStore, receiver: Receiver) -> None:
    key, _ = key_store.create("events", scope="operator")
    settings = make_settings(tmp_path, events_url=receiver.url, events_key=key)
    async for api in start_api(settings, key_store, key):
        r = await api.call_home(body("node-ev", mac="52:54:00:aa:bb:09"))
        assert r.status_code == 202, r.text
        job = await api.wait_job(r.json()["job_id"])
        assert job["state"] == "successful"
    # the lifespan's end drained the queue
    kinds = receiver.kinds()
    assert kinds[0] == "job.queued" and kinds[1] == "job.started" and kinds[-1] == "job.finished", kinds
    assert "job.output" in kinds
    assert {auth for auth, _ in receiver.received} == {f"Bearer {key}"}
    first, last = receiver.received[0][1], receiver.received[-1][1]
    assert first["data"]["hostname"] == "node-ev" and first["data"]["source"] == "provisioning"
    assert last["level"] == "info" and "successful" in last["message"]
    assert any("PLAY RECAP" in event["message"] for _, event in receiver.received)


async def test_an_absent_mission_control_never_stops_a_job(tmp_path: Path, key_store: KeyStore) -> None:
    key, _ = key_store.create("events", scope="operator")
    # nothing listens on this port
    settings = make_settings(tmp_path, events_url=f"http://127.0.0.1:{free_port()}/api/events", events_key=key)
    async for api in start_api(settings, key_store, key):
        r = await api.call_home(body("node-lost"))
        job = await api.wait_job(r.json()["job_id"])
        assert job["state"] == "successful"
        assert api.app.state.forwarder.sent == 0


def test_events_url_needs_a_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="events_key"):
        make_settings(tmp_path, events_url="http://127.0.0.1:8000/api/events")
    with pytest.raises(ValidationError, match="events_url"):
        ProvisionSettings(events_url="file:///etc/passwd", events_key="x")
