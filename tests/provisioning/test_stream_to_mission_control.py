"""A node calls home and a person watching Mission Control sees its playbook run live.

Two real processes share one state directory (and so one key file): the agent with Mission Control
(``python -m fleetmind.apps.agent_process``) and the provisioning API (``python -m fleetmind.provisioning serve``) with
``FLEETMIND_PROVISION_EVENTS_URL`` pointing at Mission Control's ``/api/events``. A WebSocket client, as the page
is, reads ``/api/ws/events`` while a real ansible-playbook run happens.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from fleetmind.security import KeyStore
from tests.conftest import free_port, stop_process, wait_http
from tests.provisioning.conftest import Server, server_env, start_server, token_for


@pytest.fixture
def mission_control(tmp_path: Path, llama_server_url: str) -> Iterator[tuple[str, str]]:
    state = tmp_path / "state"
    state.mkdir()
    key, _ = KeyStore(state / "keys.json").create("watcher", scope="operator")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEETMIND_", "PIECAT_"))}
    env |= {
        "FLEETMIND_STATE_DIR": str(state),
        "FLEETMIND_AGENT_EXPERTS": f"general={llama_server_url}",
        "CONSUL_HTTP_ADDR": "127.0.0.1:1",
        "NOMAD_ADDR": "http://127.0.0.1:1",
    }
    log = tmp_path / "agent.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetmind.apps.agent_process", "--port", str(port)],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", 60, proc)
        yield url, key
    finally:
        stop_process(proc)


async def read_until_finished(ws_url: str, key: str, seen: list[dict[str, Any]]) -> None:
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 120))
            seen.append(message)
            if message.get("kind") == "job.finished":
                return


async def test_a_call_home_shows_up_live_in_mission_control(tmp_path: Path, mission_control: tuple[str, str]) -> None:
    url, key = mission_control
    env = server_env(
        tmp_path,
        "quick.yaml",
        FLEETMIND_PROVISION_EVENTS_URL=f"{url}/api/events",
        FLEETMIND_PROVISION_EVENTS_KEY=key,
    )
    env["FLEETMIND_STATE_DIR"] = str(tmp_path / "state")  # the same key file as Mission Control
    server: Server = start_server(env, tmp_path / "provisioning.log")
    try:
        seen: list[dict[str, Any]] = []
        reader = asyncio.create_task(read_until_finished(url.replace("http", "ws") + "/api/ws/events", key, seen))
        await asyncio.sleep(0.5)  # the reader is connected (events before it would still come from the backlog)
        token = token_for(env)
        async with httpx.AsyncClient() as client:
            r = await client.post(
                f"{server.url}/api/ready-for-provisioning",
                json={"hostname": "node-live", "ip": "10.0.0.1", "mac": "52:54:00:aa:bb:42"},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert r.status_code == 202, r.text
        await asyncio.wait_for(reader, 180)
    finally:
        stop_process(server.proc)
    events = [m for m in seen if m.get("type") == "event"]
    jobs = [e for e in events if str(e.get("kind", "")).startswith("job.")]
    kinds = [e["kind"] for e in jobs]
    assert kinds[0] == "job.queued" and "job.started" in kinds and kinds[-1] == "job.finished", kinds
    assert any("PLAY RECAP" in e["message"] for e in jobs)
    assert all(e["data"]["hostname"] == "node-live" for e in jobs)
    assert "successful" in jobs[-1]["message"]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # in order, none twice
