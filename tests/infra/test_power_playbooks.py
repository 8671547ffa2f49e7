"""The power playbooks and the Nomad node meta: ``playbooks/wake.yaml`` sends a real magic packet through
``fleetmind power wake`` (caught on loopback), ``playbooks/sleep.yaml`` never targets a control node, and the Nomad
role renders the node's placement class into its client ``meta`` for job constraints."""

from __future__ import annotations

import socket
from pathlib import Path

import hcl2

from tests.infra.conftest import ANSIBLE_DIR, PLAYBOOKS, local_inventory, run_playbook

MAC = "52:54:00:12:34:56"


def write_inventory(tmp: Path, port_host: str = "127.0.0.1") -> Path:
    inv = tmp / "site.yaml"
    inv.write_text(
        "all:\n  children:\n    control:\n      hosts:\n        ctl:\n          fleetmind_mac: '52:54:00:00:00:01'\n"
        "    worker:\n      hosts:\n        old-box:\n          ansible_host: !unsafe '10.1.2.3'\n"
        f"          fleetmind_mac: !unsafe '{MAC}'\n          power_wol_broadcast: {port_host}\n"
    )
    return inv


def test_wake_playbook_sends_the_magic_packet(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(30)
        run = run_playbook(
            ANSIBLE_DIR / "playbooks" / "wake.yaml",
            write_inventory(tmp_path),
            extra_vars={"wake_port": receiver.getsockname()[1]},
        )
        run.check()
        packet, _ = receiver.recvfrom(200)
    assert packet == b"\xff" * 6 + bytes.fromhex(MAC.replace(":", "")) * 16
    assert "old-box" in run.output and "ctl" not in run.output.split("PLAY RECAP")[1]


def test_sleep_playbook_never_targets_a_control_node(tmp_path: Path) -> None:
    run = run_playbook(ANSIBLE_DIR / "playbooks" / "sleep.yaml", write_inventory(tmp_path), "--limit", "ctl")
    assert run.returncode == 0, run.output
    assert "no hosts matched" in run.output.lower() or "skipping: no hosts matched" in run.output


def test_nomad_client_meta_carries_the_node_class(tmp_path: Path) -> None:
    inventory = local_inventory(
        tmp_path, children={"control": {"hosts": {"fm-control-1": {"ansible_host": "10.0.0.11"}}}}
    )
    root = tmp_path / "out"
    run_playbook(
        PLAYBOOKS / "render_hashicorp.yml",
        inventory,
        extra_vars={
            "render_root": str(root),
            "consul_user": "root",
            "consul_group": "root",
            "consul_manage_service": False,
            "nomad_manage_service": False,
            "consul_encrypt_key": "cg8StVXbQJ0gPvMd9o7yrg9Cz/aGG0J1ixHEXiAPAVA=",
            "consul_acl_initial_management_token": "6c1f3f7e-1c1d-4a55-9d2b-0d1f2f3a4b5c",
            "consul_acl_agent_token": "7d2a4b8f-2d2e-4b66-8e3c-1e2a3b4c5d6e",
            "nomad_encrypt_key": "cg8StVXbQJ0gPvMd9o7yrg9Cz/aGG0J1ixHEXiAPAVA=",
            "nomad_acl_bootstrap_token": "9f4c6da1-4f40-4d88-a05e-304c5d6e7f80",
            "nomad_consul_token": "8e3b5c90-3e3f-4c77-9f4d-2f3b4c5d6e7f",
            "fleetmind_class": "avx2",
            "fleetmind_workload": "expert",
        },
    ).check()
    doc = hcl2.loads((root / "client/nomad.d/nomad.hcl").read_text())
    client = doc["client"][0] if isinstance(doc["client"], list) else doc["client"]
    meta = client["meta"][0] if isinstance(client["meta"], list) else client["meta"]
    assert {k.strip('"'): str(v).strip('"') for k, v in meta.items() if not k.startswith("__")} == {
        "fleetmind_class": "avx2",
        "fleetmind_workload": "expert",
        "fleetmind_rpc": "false",  # not in rpc_workers: no RPC worker is placed here (the placement tag)
    }


def test_power_role_records_why_wake_on_lan_is_not_armed(tmp_path: Path) -> None:
    """The role in --check on this machine's loopback: no NIC to arm, so it records the reason instead of failing."""
    play = tmp_path / "power.yml"
    status = tmp_path / "state" / "power-wol.status"
    play.write_text(
        "- hosts: localhost\n  gather_facts: true\n  roles:\n    - role: power\n      vars:\n"
        f"        power_wol_interface: lo\n        power_manage_service: false\n"
        f"        power_wol_status_file: {status}\n"
    )
    run = run_playbook(play, local_inventory(tmp_path), "--check", "--diff")
    run.check()
    assert "+not armed on lo: " in run.output
    assert "Arm Wake-on-LAN" in run.output and not status.exists()  # check mode writes nothing
