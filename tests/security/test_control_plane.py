"""The control plane answers only to those it should: the attacks of issue 14 replayed over real sockets.

A web page (foreign Origin, DNS-rebound Host, a text/plain "simple" POST) or a local process without the token
must not run a job or register a service on the embedded Nomad/Consul APIs; oversized bodies are refused before
they are read; keys and tokens in a query string never reach a log. Every test also shows the legitimate path
(with the token, from loopback) still works, so a refusal is the guard's doing, not a broken server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from fleetmind.cluster.client import ClusterClient
from fleetmind.cluster.embedded import EmbeddedCluster
from fleetmind.cluster.errors import OrchestratorUnavailable, RegistryUnavailable
from fleetmind.http import install
from tests.conftest import free_port

T = TypeVar("T")
EVIL_ORIGIN = "http://evil.example"


class Cluster:
    """An EmbeddedCluster on free loopback ports, in its own event loop thread."""

    def __init__(self, logs: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.cluster = EmbeddedCluster(logs_dir=logs, nomad_port=0, consul_port=0)
        self.call(self.cluster.start())
        self.token = self.cluster.token
        self.nomad = self.cluster.nomad_addr
        self.consul = f"http://{self.cluster.consul_addr}"

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self) -> None:
        try:
            self.call(self.cluster.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path / "logs")
    try:
        yield running
    finally:
        running.close()


def shell_job(job_id: str, marker: Path) -> dict[str, Any]:
    """The attack's payload: a raw_exec task that would leave ``marker`` behind if it ever ran."""
    script = f"open({str(marker)!r}, 'w').write('pwned')"
    return {
        "ID": job_id,
        "Name": job_id,
        "Type": "batch",
        "TaskGroups": [
            {
                "Name": "g",
                "Count": 1,
                "Tasks": [
                    {"Name": "t", "Driver": "raw_exec", "Config": {"command": sys.executable, "args": ["-c", script]}}
                ],
            }
        ],
    }


def ran(marker: Path, wait_s: float = 1.5) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if marker.exists():
            return True
        time.sleep(0.05)
    return marker.exists()


def submit(cluster: Cluster, job: dict[str, Any], **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", {})
    if "content" not in kwargs:
        kwargs["content"] = json.dumps({"Job": job})
        headers.setdefault("Content-Type", "application/json")
    return httpx.post(f"{cluster.nomad}/v1/jobs", headers=headers, timeout=10, **kwargs)


def test_tokenless_job_submission_is_refused_and_nothing_runs(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    refused = submit(cluster, shell_job("attack", marker))
    assert refused.status_code == 403 and refused.text == "Permission denied"
    assert not ran(marker) and cluster.cluster.orchestrator.jobs == {}
    # nor may a token-less caller read the cluster
    assert httpx.get(f"{cluster.nomad}/v1/jobs").status_code == 403

    legit = submit(cluster, shell_job("legit", marker), headers={"X-Nomad-Token": cluster.token})
    assert legit.status_code == 200 and legit.json()["EvalID"]
    assert ran(marker, wait_s=30)


def test_a_text_plain_simple_request_is_refused_even_with_the_token(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    body = json.dumps({"Job": shell_job("attack", marker)})
    for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "text/plain", "X-Nomad-Token": cluster.token}):
        refused = submit(cluster, {}, content=body, headers=headers)
        assert refused.status_code in (403, 415)
    with_token = submit(
        cluster, {}, content=body, headers={"Content-Type": "text/plain", "X-Nomad-Token": cluster.token}
    )
    assert with_token.status_code == 415
    form = submit(
        cluster,
        {},
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Nomad-Token": cluster.token},
    )
    assert form.status_code == 415
    assert not ran(marker) and cluster.cluster.orchestrator.jobs == {}

    legit = submit(cluster, shell_job("legit", marker), headers={"X-Nomad-Token": cluster.token})
    assert legit.status_code == 200 and ran(marker, wait_s=30)


def test_a_foreign_origin_is_refused_even_with_the_token(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for origin in (EVIL_ORIGIN, "null", "http://127.0.0.1.evil.example:4646"):
        refused = submit(
            cluster, shell_job("attack", marker), headers={"X-Nomad-Token": cluster.token, "Origin": origin}
        )
        assert refused.status_code == 403, origin
        assert refused.json()["error"]["code"] == "forbidden_origin"
    consul = httpx.put(
        f"{cluster.consul}/v1/agent/service/register",
        json={"Name": "pipecatapp", "Port": 1},
        headers={"X-Consul-Token": cluster.token, "Origin": EVIL_ORIGIN},
    )
    assert consul.status_code == 403 and "pipecatapp" not in cluster.cluster.registry.catalog()
    assert not ran(marker) and cluster.cluster.orchestrator.jobs == {}

    port = cluster.nomad.rsplit(":", 1)[1]
    legit = submit(
        cluster,
        shell_job("legit", marker),
        headers={"X-Nomad-Token": cluster.token, "Origin": f"http://localhost:{port}"},
    )
    assert legit.status_code == 200 and ran(marker, wait_s=30)


def test_dns_rebinding_a_foreign_host_is_refused_even_with_the_token(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    port = cluster.nomad.rsplit(":", 1)[1]
    for host in (f"evil.example:{port}", f"127.0.0.1.nip.io:{port}", "evil.example"):
        refused = submit(cluster, shell_job("attack", marker), headers={"X-Nomad-Token": cluster.token, "Host": host})
        assert refused.status_code == 403, host
        assert refused.json()["error"]["code"] == "forbidden_host"
        # a rebound page cannot read either (the embedded APIs check Host on every request)
        read = httpx.get(f"{cluster.nomad}/v1/jobs", headers={"X-Nomad-Token": cluster.token, "Host": host})
        assert read.status_code == 403
    assert not ran(marker) and cluster.cluster.orchestrator.jobs == {}

    legit = submit(
        cluster, shell_job("legit", marker), headers={"X-Nomad-Token": cluster.token, "Host": f"localhost:{port}"}
    )
    assert legit.status_code == 200 and ran(marker, wait_s=30)


def test_a_tokenless_fake_service_registration_is_refused(cluster: Cluster) -> None:
    fake = {"Name": "pipecatapp", "ID": "fake", "Address": "127.0.0.1", "Port": 9, "Tags": ["agent"]}
    url = f"{cluster.consul}/v1/agent/service/register"
    assert httpx.put(url, json=fake).status_code == 403
    assert httpx.put(url, json=fake, headers={"X-Consul-Token": "x" * 43}).status_code == 403
    assert "pipecatapp" not in cluster.cluster.registry.catalog()
    assert httpx.put(f"{cluster.consul}/v1/kv/cfg", content=b"x").status_code == 403
    assert cluster.cluster.registry.kv_get("cfg") is None

    assert httpx.put(url, json=fake, headers={"X-Consul-Token": cluster.token}).status_code == 200
    assert "pipecatapp" in cluster.cluster.registry.catalog()


def test_a_wrong_token_is_refused_and_tokens_in_the_url_are_not_read(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    wrong = cluster.token[:-1] + ("A" if cluster.token[-1] != "A" else "B")
    for headers in (
        {"X-Nomad-Token": wrong},
        {"Authorization": f"Bearer {wrong}"},
        {"X-Nomad-Token": ""},
        {"Authorization": f"Basic {cluster.token}"},
    ):
        assert submit(cluster, shell_job("attack", marker), headers=headers).status_code == 403
    in_url = httpx.post(
        f"{cluster.nomad}/v1/jobs",
        params={"token": cluster.token, "X-Nomad-Token": cluster.token},
        json={"Job": shell_job("attack", marker)},
    )
    assert in_url.status_code == 403
    consul = httpx.get(f"{cluster.consul}/v1/agent/services", params={"token": cluster.token})
    assert consul.status_code == 403 and consul.text == "Permission denied"
    assert not ran(marker)

    bearer = submit(cluster, shell_job("legit", marker), headers={"Authorization": f"Bearer {cluster.token}"})
    assert bearer.status_code == 200 and ran(marker, wait_s=30)
    bearer_consul = httpx.get(
        f"{cluster.consul}/v1/agent/services", headers={"Authorization": f"Bearer {cluster.token}"}
    )
    assert bearer_consul.status_code == 200


def test_the_client_refuses_to_work_without_the_token_and_works_with_it(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLEETMIND_STATE_DIR", str(tmp_path / "empty-state"))
    for name in ("NOMAD_TOKEN", "CONSUL_HTTP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    from fleetmind.config import get_settings

    get_settings.cache_clear()
    try:
        with ClusterClient(consul_addr=cluster.cluster.consul_addr, nomad_addr=cluster.nomad) as anonymous:
            with pytest.raises(OrchestratorUnavailable, match="NOMAD_TOKEN"):
                anonymous.jobs()
            with pytest.raises(RegistryUnavailable):
                anonymous.kv_get("k")
        monkeypatch.setenv("NOMAD_TOKEN", cluster.token)
        monkeypatch.setenv("CONSUL_HTTP_TOKEN", cluster.token)
        with ClusterClient(consul_addr=cluster.cluster.consul_addr, nomad_addr=cluster.nomad) as client:
            assert client.jobs() == []
            client.kv_put("k", b"v")
            assert client.kv_get("k") == b"v"
    finally:
        get_settings.cache_clear()


def test_an_oversized_body_is_refused_before_it_is_read(cluster: Cluster) -> None:
    headers = {"X-Nomad-Token": cluster.token, "Content-Type": "application/json"}
    job = {"Job": {"ID": "big", "Meta": {"pad": "x" * (2 * 1024 * 1024)}}}
    body = json.dumps(job).encode()
    big = httpx.post(f"{cluster.nomad}/v1/jobs", content=body, headers=headers)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the guard counts what arrives
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    chunked = httpx.post(f"{cluster.nomad}/v1/jobs", content=chunks(), headers=headers)
    assert chunked.status_code == 413
    kv = httpx.put(
        f"{cluster.consul}/v1/kv/big", content=b"x" * (2 * 1024 * 1024), headers={"X-Consul-Token": cluster.token}
    )
    assert kv.status_code == 413 and cluster.cluster.registry.kv_get("big") is None
    assert cluster.cluster.orchestrator.jobs == {}

    small = httpx.put(f"{cluster.consul}/v1/kv/small", content=b"x" * 1024, headers={"X-Consul-Token": cluster.token})
    assert small.status_code == 200 and small.json() is True


def test_query_string_secrets_never_reach_a_log(caplog: pytest.LogCaptureFixture) -> None:
    """Our servers' access log, httpx's request log and our own log lines: the key in a URL is redacted."""
    secret = "fm-" + "S3cr3tKeyValue" * 3
    app = FastAPI()

    @app.get("/voice/ws")
    async def voice() -> dict[str, bool]:
        logging.getLogger("fleetmind.voice").warning("refused %s", f"http://127.0.0.1/voice/ws?token={secret}")
        return {"ok": True}

    install(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=True))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with caplog.at_level(logging.INFO):
            for query in (f"token={secret}", f"api_key={secret}&x=1", f"key={secret}"):
                assert httpx.get(f"http://127.0.0.1:{port}/voice/ws?{query}").status_code == 200
            logging.getLogger("fleetmind.test").info("header X-Nomad-Token: %s and Bearer %s", secret, secret)
    finally:
        server.should_exit = True
        thread.join(10)
    messages = [r.getMessage() for r in caplog.records]
    access = [m for m in messages if "/voice/ws" in m and "HTTP/1.1" in m]
    assert len(access) == 3 and all("/voice/ws?[redacted]" in m for m in access), messages
    assert any(m.startswith("HTTP Request: GET") for m in messages)  # httpx's own line was logged, and redacted
    assert any("refused http://127.0.0.1/voice/ws?[redacted]" in m for m in messages)
    assert not [m for m in messages if secret in m or "S3cr3tKeyValue" in m], messages


TASK = {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}
BAD_JOBS: list[Any] = [
    b"{not json",
    b"\xff\xfe\x00",
    b"[" * 100_000 + b"]" * 100_000,
    [],
    {"Job": "x"},
    {"Job": {"ID": "x", "TaskGroups": "abc"}},
    {"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Count": "many", "Tasks": [TASK]}]}},
    {"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Count": 10**9, "Tasks": [TASK]}]}},
    {"Job": {"ID": "../../etc", "TaskGroups": [{"Name": "g", "Tasks": [TASK]}]}},
    {"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [{**TASK, "Env": {"A": 1}}]}]}},
    {"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [TASK], "Networks": [{"ReservedPorts": [{}]}]}]}},
    {"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [TASK], "Services": [{"Name": "s", "Checks": [{}]}]}]}},
]
BAD_SERVICES: list[Any] = [
    b"{not json",
    b"[" * 100_000 + b"]" * 100_000,
    [1, 2],
    {"Name": 5},
    {"Name": "s", "Port": "abc"},
    {"Name": "s", "Port": 70000},
    {"Name": "s", "Tags": "abc"},
    {"Name": "s", "Meta": {"k": {"deep": 1}}},
    {"Name": "s", "Check": {"TCP": "no-port"}},
    {"Name": "s", "Check": {"HTTP": "not a url", "Interval": "1s"}},
    {"Name": "s", "Check": {"HTTP": "http://127.0.0.1:9/", "Interval": "soon"}},
    {"Name": "s", "Check": {"HTTP": "http://127.0.0.1:9/", "Interval": "0s"}},
    {"Name": "s", "Checks": "abc"},
]


def _body(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


@pytest.mark.parametrize("body", BAD_JOBS, ids=range(len(BAD_JOBS)))
def test_a_malformed_job_is_a_400_never_a_500(cluster: Cluster, body: Any) -> None:
    headers = {"X-Nomad-Token": cluster.token, "Content-Type": "application/json"}
    resp = httpx.post(f"{cluster.nomad}/v1/jobs", content=_body(body), headers=headers)
    assert resp.status_code == 400, resp.text
    assert cluster.cluster.orchestrator.jobs == {}


@pytest.mark.parametrize("body", BAD_SERVICES, ids=range(len(BAD_SERVICES)))
def test_a_malformed_registration_is_a_400_never_a_500(cluster: Cluster, body: Any) -> None:
    url = f"{cluster.consul}/v1/agent/service/register"
    resp = httpx.put(url, content=_body(body), headers={"X-Consul-Token": cluster.token})
    assert resp.status_code == 400, resp.text
    assert cluster.cluster.registry.services == {}
    bad_cas = httpx.delete(f"{cluster.consul}/v1/kv/k", params={"cas": "x"}, headers={"X-Consul-Token": cluster.token})
    assert bad_cas.status_code == 400
