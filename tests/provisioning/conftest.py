"""Provisioning fixtures: settings under tmp_path, API keys, tokens, an in-process app, real servers, a chroot host."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fleetmind.provisioning.app import create_app
from fleetmind.provisioning.settings import ProvisionSettings
from fleetmind.provisioning.store import JobStore
from fleetmind.provisioning.tokens import new_token
from fleetmind.security import KeyStore, hash_key
from tests.conftest import free_port, stop_process, wait_http
from tests.provisioning.chroot_host import ChrootHost, chroot_host

PLAYBOOKS = Path(__file__).parent / "playbooks"
FINAL = {"successful", "failed", "interrupted"}


def make_settings(root: Path, playbook: str = "quick.yaml", **extra: object) -> ProvisionSettings:
    base = root / "provisioning"
    return ProvisionSettings(
        inventory_path=base / "inventory.yaml",
        playbook_path=PLAYBOOKS / playbook,
        todo_path=base / "TODO.md",
        db_path=base / "jobs.sqlite3",
        runs_dir=base / "runs",
        **extra,  # type: ignore[arg-type]
    )


def make_token(settings: ProvisionSettings, *, role: str = "worker", **limits: float | int | None) -> str:
    secret = new_token()
    store = JobStore(settings.db_path)
    try:
        store.add_token(name="test", sha256=hash_key(secret), role=role, **limits)  # type: ignore[arg-type]
    finally:
        store.close()
    return secret


def body(hostname: str, ip: str = "10.0.0.1", **extra: object) -> dict[str, object]:
    return {"hostname": hostname, "ip": ip, **extra}


@dataclass
class Api:
    """An in-process app with its lifespan running, a client, a token and an API key."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: ProvisionSettings
    token: str
    api_key: str

    @property
    def key_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def token_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call_home(self, payload: dict[str, object], token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return await self.client.post("/api/ready-for-provisioning", json=payload, headers=headers)

    async def wait_job(self, job_id: str, patience: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + patience
        while True:
            r = await self.client.get(f"/api/provisioning/jobs/{job_id}", headers=self.key_headers)
            assert r.status_code == 200, r.text
            job: dict[str, Any] = r.json()
            if job["state"] in FINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {patience}s")
            await asyncio.sleep(0.2)


@pytest.fixture
def key_store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.json")


@pytest.fixture
def api_key(key_store: KeyStore) -> str:
    key, _ = key_store.create("provisioning-tests", scope="operator")
    return key


@pytest.fixture
def marker_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    # the playbook reads it through ansible-runner, which hands our environment to ansible-playbook
    monkeypatch.setenv("FLEETMIND_TEST_MARKER_DIR", str(path))
    return path


async def start_api(settings: ProvisionSettings, key_store: KeyStore, api_key: str) -> AsyncIterator[Api]:
    app = create_app(settings, key_store=key_store)
    token = make_token(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://provision.test") as client:
            yield Api(app, client, settings, token, api_key)


@pytest.fixture
async def api(tmp_path: Path, key_store: KeyStore, api_key: str) -> AsyncIterator[Api]:
    """The app on the quick playbook."""
    async for a in start_api(make_settings(tmp_path), key_store, api_key):
        yield a


# -- a real server process --------------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    log: Path


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``fleetmind provision ARGS`` as a subprocess (via the package's ``__main__``, until registered)."""
    return subprocess.run(
        [sys.executable, "-m", "fleetmind.provisioning", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def server_env(root: Path, playbook: str, **extra: str) -> dict[str, str]:
    base = root / "provisioning"
    return {
        **os.environ,
        "FLEETMIND_STATE_DIR": str(root / "state"),
        "FLEETMIND_PROVISION_PLAYBOOK_PATH": str(PLAYBOOKS / playbook),
        "FLEETMIND_PROVISION_INVENTORY_PATH": str(base / "inventory.yaml"),
        "FLEETMIND_PROVISION_TODO_PATH": str(base / "TODO.md"),
        "FLEETMIND_PROVISION_DB_PATH": str(base / "jobs.sqlite3"),
        "FLEETMIND_PROVISION_RUNS_DIR": str(base / "runs"),
        "FLEETMIND_LOG_LEVEL": "WARNING",
        **extra,
    }


def start_server(env: dict[str, str], log: Path, port: int | None = None) -> Server:
    port = port or free_port()
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetmind.provisioning", "serve", "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", 60, proc)
    except Exception:
        stop_process(proc)
        raise RuntimeError(f"provisioning API did not start: {log.read_text(errors='replace')[-3000:]}") from None
    return Server(proc, url, env, log)


def api_key_for(env: dict[str, str]) -> str:
    key, _ = KeyStore(Path(env["FLEETMIND_STATE_DIR"]) / "keys.json").create("tests", scope="operator")
    return key


def token_for(env: dict[str, str], **limits: int) -> str:
    secret = new_token()
    store = JobStore(Path(env["FLEETMIND_PROVISION_DB_PATH"]))
    try:
        store.add_token(name="tests", sha256=hash_key(secret), role="worker", **limits)
    finally:
        store.close()
    return secret


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts; every one is stopped (with its process group) at the end."""
    started: list[Server] = []
    yield started
    for s in started:
        stop_process(s.proc)


# -- a chroot test host -------------------------------------------------------------------------------------


@pytest.fixture
def debian_host(tmp_path: Path) -> Iterator[ChrootHost]:
    """A throwaway Debian host (an overlay of the cached debootstrap base) for real playbook runs."""
    with chroot_host(tmp_path / "host") as host:
        yield host
