"""The inventory file: grouped by role, idempotent, atomic, locked across processes, never clobbered."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import yaml

from fleetmind.provisioning.errors import InventoryError
from fleetmind.provisioning.inventory import Inventory, load_yaml

ROLES = ("worker", "control")


def _enrol_many(path: str, start: int, count: int) -> None:
    inv = Inventory(Path(path), roles=ROLES)
    for i in range(start, start + count):
        inv.upsert(f"node-{i:03d}", role="worker", ip=f"10.0.{i // 250}.{i % 250 + 1}")


def test_upsert_groups_by_role_and_is_idempotent(tmp_path: Path) -> None:
    inv = Inventory(tmp_path / "inventory.yaml", roles=ROLES)
    facts = {"cores": 4, "cpu_model": "Intel(R) Core(TM) i5", "disks": [{"name": "sda", "size_bytes": 10}]}
    assert inv.upsert("node-a", role="worker", ip="10.0.0.5", mac="52:54:00:00:00:01", facts=facts) is True
    first = inv.path.read_bytes()
    assert inv.upsert("node-a", role="worker", ip="10.0.0.5", mac="52:54:00:00:00:01", facts=facts) is False
    assert inv.path.read_bytes() == first

    data = yaml.safe_load(first.decode().replace("!unsafe ", ""))
    host = data["all"]["children"]["worker"]["hosts"]["node-a"]
    assert host["ansible_host"] == "10.0.0.5"
    assert host["fleetmind_facts"]["cores"] == 4

    # a node enrolled again under another role moves: it is never in two role groups
    assert inv.upsert("node-a", role="control", ip="10.0.0.6") is True
    entry = inv.get("node-a")
    assert entry is not None and entry.group == "control" and entry.ip == "10.0.0.6"
    reloaded = load_yaml(inv.path.read_text())
    assert "node-a" not in reloaded["all"]["children"]["worker"]["hosts"]


def test_node_strings_are_written_unsafe_and_hand_edits_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("all:\n  vars:\n    site: lab\n  children:\n    storage:\n      hosts:\n        nas: {}\n")
    inv = Inventory(path, roles=ROLES)
    inv.upsert("node-b", role="worker", ip="10.0.0.7", facts={"cpu_model": "AMD (test)"})
    text = path.read_text()
    # Ansible never templates a !unsafe value, whatever it contains
    assert "cpu_model: !unsafe 'AMD (test)'" in text
    data = load_yaml(text)
    assert data["all"]["vars"] == {"site": "lab"}
    assert set(inv.hosts()) == {"nas", "node-b"}


def test_an_unparseable_inventory_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("all: [unclosed\n")
    with pytest.raises(InventoryError, match="not valid YAML"):
        Inventory(path, roles=ROLES).upsert("node-c", role="worker", ip="10.0.0.8")
    assert path.read_text() == "all: [unclosed\n"


def test_concurrent_writers_in_separate_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_enrol_many, args=(str(path), i * 25, 25)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    hosts = Inventory(path, roles=ROLES).hosts()
    assert len(hosts) == 100
    assert hosts["node-099"].group == "worker" and hosts["node-099"].ip == "10.0.0.100"
    assert "ansible_host: !unsafe '10.0.0.100'" in path.read_text()  # written for Ansible never to template
    assert not list(tmp_path.glob(".inventory.yaml.*.tmp"))
