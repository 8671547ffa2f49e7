"""The Consul and Nomad roles render configurations that parse as HCL and carry gossip encryption, ACLs and the
join addresses; the job var-files fleetmind_job writes parse too. (Their --check run is in test_converge.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.infra.conftest import PLAYBOOKS, local_inventory, run_playbook

GOSSIP = "cg8StVXbQJ0gPvMd9o7yrg9Cz/aGG0J1ixHEXiAPAVA="
MGMT = "6c1f3f7e-1c1d-4a55-9d2b-0d1f2f3a4b5c"
AGENT = "7d2a4b8f-2d2e-4b66-8e3c-1e2a3b4c5d6e"
NOMAD_CONSUL = "8e3b5c90-3e3f-4c77-9f4d-2f3b4c5d6e7f"
NOMAD_BOOT = "9f4c6da1-4f40-4d88-a05e-304c5d6e7f80"
SERVERS = {"fm-control-1": "10.0.0.11", "fm-control-2": "10.0.0.12", "fm-control-3": "10.0.0.13"}


def unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals and labels; compare values without them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        # python-hcl2 adds bookkeeping keys (__comments__, __is_block__)
        return {unquote(k): unquote(v) for k, v in value.items() if not str(k).startswith("__")}
    return value


def parse(path: Path) -> dict[str, Any]:
    text = path.read_text()
    assert text.startswith("#"), "templates start with the managed marker"
    return unquote(hcl2.loads(text))


def block(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc[name]
    return value[0] if isinstance(value, list) else value


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hcl")
    control = {"hosts": {h: {"ansible_host": a} for h, a in SERVERS.items()}}
    inventory = local_inventory(tmp, children={"control": control})
    root = tmp / "out"
    run_playbook(
        PLAYBOOKS / "render_hashicorp.yml",
        inventory,
        extra_vars={
            "render_root": str(root),
            "consul_user": "root",
            "consul_group": "root",
            "consul_manage_service": False,
            "nomad_manage_service": False,
            "consul_encrypt_key": GOSSIP,
            "consul_acl_initial_management_token": MGMT,
            "consul_acl_agent_token": AGENT,
            "nomad_encrypt_key": GOSSIP,
            "nomad_acl_bootstrap_token": NOMAD_BOOT,
            "nomad_consul_token": NOMAD_CONSUL,
        },
    ).check()
    return root


def test_consul_server_config(rendered: Path) -> None:
    doc = parse(rendered / "server/consul.d/consul.hcl")
    assert doc["server"] is True
    assert doc["bootstrap_expect"] == 3
    assert doc["encrypt"] == GOSSIP
    assert doc["encrypt_verify_incoming"] is True and doc["encrypt_verify_outgoing"] is True
    assert doc["retry_join"] == list(SERVERS.values())
    acl = block(doc, "acl")
    assert acl["enabled"] is True and acl["default_policy"] == "deny"
    tokens = block(acl, "tokens")
    assert tokens == {"initial_management": MGMT, "agent": AGENT}


def test_consul_client_config_has_no_management_token(rendered: Path) -> None:
    doc = parse(rendered / "client/consul.d/consul.hcl")
    assert doc["server"] is False
    assert "bootstrap_expect" not in doc
    assert block(block(doc, "acl"), "tokens") == {"agent": AGENT}
    assert doc["encrypt"] == GOSSIP


def test_nomad_server_config(rendered: Path) -> None:
    doc = parse(rendered / "server/nomad.d/nomad.hcl")
    server = block(doc, "server")
    assert server["enabled"] is True and server["bootstrap_expect"] == 3 and server["encrypt"] == GOSSIP
    assert block(server, "server_join")["retry_join"] == list(SERVERS.values())
    assert block(doc, "acl")["enabled"] is True
    assert block(doc, "consul")["token"] == NOMAD_CONSUL
    client = block(doc, "client")
    assert client["enabled"] is True and client["node_class"] == "control"
    raw_exec = block(doc["plugin"][0]["raw_exec"], "config")
    assert raw_exec == {"enabled": True}


def test_nomad_client_config(rendered: Path) -> None:
    doc = parse(rendered / "client/nomad.d/nomad.hcl")
    assert "server" not in doc
    client = block(doc, "client")
    assert client["node_class"] == "worker"
    assert block(client, "server_join")["retry_join"] == list(SERVERS.values())


def test_secret_files_are_private(rendered: Path) -> None:
    assert (rendered / "server/nomad.d/nomad.hcl").stat().st_mode & 0o077 == 0
    assert (rendered / "server/consul.d/consul.hcl").stat().st_mode & 0o007 == 0
