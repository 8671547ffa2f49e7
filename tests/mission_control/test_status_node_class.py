"""Mission Control's status shows each expert's node class, as the expert registered it (service meta
``node_class``, filled from the node's ``meta.fleetmind_class`` by the scheduler)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from fleetmind.agent.experts import ExpertDirectory
from fleetmind.agent.runtime import AgentRuntime
from fleetmind.agent.settings import AgentSettings
from fleetmind.apps.agent_process import create_app, detach_logging
from fleetmind.cluster.client import ServiceInstance
from fleetmind.config import Settings
from fleetmind.security.service import PROOF_META, SecretSource, proof

if TYPE_CHECKING:
    from conftest import StateDir

pytestmark = pytest.mark.asyncio
SECRET = "s3cret"


class Registry:
    """The registry's answer (a Consul agent, or the embedded one) for the expert tag."""

    def __init__(self, instances: list[ServiceInstance]) -> None:
        self.instances = instances

    async def aservices_by_tag(self, tag: str) -> list[ServiceInstance]:
        return [i for i in self.instances if tag in i.tags]


def _expert(name: str, port: int, node_class: str) -> ServiceInstance:
    meta = {PROOF_META: proof(SECRET, f"expert-{name}", port), "node_class": node_class}
    return ServiceInstance(f"expert-{name}", name, "127.0.0.1", port, tags=("expert", f"expert:{name}"), meta=meta)


async def test_status_lists_each_experts_node_class(state: StateDir) -> None:
    registry = Registry(
        [
            _expert("general", 9001, "avx512"),
            _expert("code", 9002, "avx2"),
            # a node without the meta: Nomad leaves the reference as written, shown as unknown
            _expert("old", 9003, "${meta.fleetmind_class}"),
        ]
    )
    directory = ExpertDirectory(cluster=registry, secret=SecretSource(SECRET))  # type: ignore[arg-type]
    runtime = AgentRuntime(settings=AgentSettings(), directory=directory)
    app = create_app(Settings(state_dir=state.path), runtime)
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agent.test") as client:
            resp = await client.get("/api/status", headers={"Authorization": f"Bearer {state.key}"})
    finally:
        await runtime.stop()
        detach_logging(app)
    assert resp.status_code == 200, resp.text
    classes = {e["name"]: e["node_class"] for e in resp.json()["experts"]}
    assert classes == {"general": "avx512", "code": "avx2", "old": None}
