"""Fixtures for layer 3: the Nomad OpenAPI contract, an EmbeddedCluster running in its own thread, test jobs.

The cluster runs in a background event loop (as `fleetmind up` runs it in its own) so that tests drive it
through the synchronous ClusterClient, the same path other layers use, and can still inspect it in-process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from fleetmind.cluster.client import ClusterClient
from fleetmind.cluster.embedded import EmbeddedCluster

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
JOBS_DIR = REPO / "jobs"
# HashiCorp's Nomad OpenAPI description (MPL-2.0, see contracts/nomad-openapi-LICENSE.txt), kept in the repo.
OPENAPI = HERE / "contracts" / "nomad-openapi-v1.yaml"
TASK_SERVER = HERE / "task_server.py"
SEC = 1_000_000_000


def wait_for(predicate: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.05, what: str = "") -> T:
    """Poll until ``predicate()`` is truthy and return it; fail after ``timeout`` (a hang guard only)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or predicate}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes; only its parent's wait() would remove it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(
        pid_alive(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit() and _pgid_of(int(p.name)) == pgid
    )


def _pgid_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


class OpenAPIContract:
    """HashiCorp's Nomad OpenAPI description, for validating JSON bodies by schema or by operation."""

    def __init__(self, path: Path) -> None:
        self.spec = yaml.safe_load(path.read_text())
        resource = Resource.from_contents(self.spec, default_specification=DRAFT4)
        self.registry = Registry().with_resource("urn:nomad-openapi", resource)
        self.paths = self.spec["paths"]

    def validator(self, schema: dict[str, Any]) -> OAS30Validator:
        return OAS30Validator(schema, registry=self.registry, format_checker=OAS30Validator.FORMAT_CHECKER)

    def validate_schema(self, name: str, instance: Any) -> None:
        self.validator({"$ref": f"urn:nomad-openapi#/components/schemas/{name}"}).validate(instance)

    def operation(self, method: str, api_path: str) -> tuple[str, dict[str, Any]]:
        """The spec path template and operation for a concrete ``/v1/...`` request."""
        path = api_path.removeprefix("/v1")
        for template, item in self.paths.items():
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(pattern, path) and method.lower() in item:
                return template, item[method.lower()]
        raise LookupError(f"{method} {api_path} is not in the Nomad OpenAPI description")

    def response(self, method: str, api_path: str, status: int) -> dict[str, Any]:
        _, op = self.operation(method, api_path)
        response = op["responses"][str(status)]
        if "$ref" in response:
            response = self.spec["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
        return dict(response)

    def validate_response(self, method: str, api_path: str, status: int, body: Any, headers: Any) -> None:
        response = self.response(method, api_path, status)
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is not None:
            schema = _qualify(schema)
            try:
                self.validator(schema).validate(body)
            except ValidationError as exc:
                raise AssertionError(
                    f"{method} {api_path}: body does not match the spec: {exc.message} at {list(exc.absolute_path)}"
                ) from None
        for name, header in (response.get("headers") or {}).items():
            if name == "X-Nomad-Index":
                assert name in headers, f"{method} {api_path}: missing header {name}"
                if header.get("schema", {}).get("type") == "integer":
                    assert int(headers[name]) >= 1


def _qualify(schema: Any) -> Any:
    """Point local ``#/components`` refs at the registered spec resource."""
    if isinstance(schema, dict):
        return {k: (f"urn:nomad-openapi{v}" if k == "$ref" else _qualify(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_qualify(v) for v in schema]
    return schema


@pytest.fixture(scope="session")
def nomad_openapi() -> OpenAPIContract:
    return OpenAPIContract(OPENAPI)


class RunningCluster:
    """An EmbeddedCluster on free ports in a background event loop, plus a ClusterClient for it."""

    def __init__(self, logs_dir: Path, *, node_meta: dict[str, str] | None = None) -> None:
        self.logs_dir = logs_dir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="embedded-cluster", daemon=True)
        self.thread.start()
        self.cluster = EmbeddedCluster(logs_dir=logs_dir, nomad_port=0, consul_port=0, node_meta=node_meta)
        self.call(self.cluster.start())
        self.client = ClusterClient(
            consul_addr=self.cluster.consul_addr, nomad_addr=self.cluster.nomad_addr, token=self.cluster.token
        )
        # raw HTTP to either API, with the cluster token (each API reads its own header)
        self.http = httpx.Client(headers={"X-Nomad-Token": self.cluster.token, "X-Consul-Token": self.cluster.token})

    @property
    def nomad_headers(self) -> dict[str, str]:
        return {"X-Nomad-Token": self.cluster.token}

    @property
    def consul_headers(self) -> dict[str, str]:
        return {"X-Consul-Token": self.cluster.token}

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def alloc(self, job_id: str) -> dict[str, Any]:
        """The newest allocation of ``job_id`` (full ``Allocation``), once there is one."""
        allocs = wait_for(lambda: self.client.job_allocations(job_id), what=f"an allocation of {job_id}")
        return self.client.allocation(allocs[0]["ID"])

    def task_infos(self, alloc_id: str, task: str) -> list[dict[str, Any]]:
        """What each start of the test task server reported, oldest first."""
        folder = self.logs_dir / "allocs" / alloc_id / task / "local"
        infos = [json.loads(p.read_text()) for p in folder.glob("info-*.json")] if folder.exists() else []
        return sorted(infos, key=lambda i: float(i["started"]))

    def close(self) -> None:
        try:
            self.client.close()
            self.http.close()
            self.call(self.cluster.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def running_cluster(tmp_path: Path) -> Iterator[RunningCluster]:
    cluster = RunningCluster(tmp_path / "logs")
    try:
        yield cluster
    finally:
        cluster.close()


def server_job(
    job_id: str,
    *,
    service: str | None = None,
    tags: list[str] | None = None,
    restart: dict[str, Any] | None = None,
    check_restart: dict[str, Any] | None = None,
    interval_s: float = 0.5,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    kill_timeout_s: float = 2.0,
) -> dict[str, Any]:
    """A Nomad API job running task_server.py on a dynamic port, with an HTTP-checked service."""
    check: dict[str, Any] = {
        "Name": "health",
        "Type": "http",
        "Path": "/health",
        "Interval": int(interval_s * SEC),
        "Timeout": SEC,
    }
    if check_restart:
        check["CheckRestart"] = check_restart
    return {
        "ID": job_id,
        "Name": job_id,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [
            {
                "Name": "web",
                "Count": 1,
                "RestartPolicy": restart or {"Attempts": 3, "Interval": 60 * SEC, "Delay": SEC // 10, "Mode": "fail"},
                "Networks": [{"DynamicPorts": [{"Label": "http", "Value": 0}]}],
                "Services": [{"Name": service or job_id, "PortLabel": "http", "Tags": tags or [], "Checks": [check]}],
                "Tasks": [
                    {
                        "Name": "server",
                        "Driver": "raw_exec",
                        "Config": {
                            "command": sys.executable,
                            "args": [str(TASK_SERVER), "${NOMAD_PORT_http}", *(extra_args or [])],
                        },
                        "Env": env or {},
                        "Resources": {"CPU": 100, "MemoryMB": 64},
                        "KillTimeout": int(kill_timeout_s * SEC),
                    }
                ],
            }
        ],
    }
