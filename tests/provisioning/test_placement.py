"""A call-home's facts decide the node's class: the provisioning API writes class, build and workload into the
inventory (``!unsafe``, beside the node's group role), where the power agent and the Nomad role read them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fleetmind.power.nodes import read_inventory
from fleetmind.security import KeyStore
from tests.llm.test_node_class import HASWELL_2020, NEHALEM, SKYLAKE_X
from tests.provisioning.conftest import Api, body, make_settings, start_api


@pytest.fixture
async def api(tmp_path: Path, key_store: KeyStore, api_key: str, marker_dir: Path) -> AsyncIterator[Api]:
    async for a in start_api(make_settings(tmp_path, "ok.yaml"), key_store, api_key):
        yield a


async def test_call_home_writes_each_nodes_class(api: Api) -> None:
    machines = {
        "sse4-box": (NEHALEM, 4, 7900, "52:54:00:aa:bb:11"),
        "avx2-box": (HASWELL_2020, 8, 15900, "52:54:00:aa:bb:12"),
        "avx512-box": (SKYLAKE_X, 16, 31900, "52:54:00:aa:bb:13"),
    }
    for i, (name, (flags, cores, ram, mac)) in enumerate(machines.items()):
        facts = {"cpu_flags": flags, "cores": cores, "ram_mb": ram}
        r = await api.call_home(body(name, ip=f"10.0.0.{i + 2}", mac=mac, facts=facts))
        assert r.status_code == 202, r.text
        assert (await api.wait_job(r.json()["job_id"]))["state"] == "successful"
    text = api.settings.inventory_path.read_text()
    assert "fleetmind_class: !unsafe 'avx2'" in text and "fleetmind_workload: !unsafe 'expert'" in text
    nodes = read_inventory(api.settings.inventory_path)
    got = {
        n: (nodes[n].node_class, nodes[n].vars["fleetmind_llama_variant"], nodes[n].vars["fleetmind_workload"])
        for n in machines
    }
    assert got == {
        "sse4-box": ("sse42", "sse42", "embedder"),
        "avx2-box": ("avx2", "haswell", "expert"),
        "avx512-box": ("avx512", "skylakex", "expert"),
    }
    assert all(nodes[n].vars["fleetmind_role"] == "worker" for n in machines)  # the group role is untouched
