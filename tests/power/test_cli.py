"""``fleetmind power`` from the outside, as a user types it: help, status, and clear refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FLEETMIND = str(Path(sys.executable).parent / "fleetmind")
INVENTORY = """all:
  children:
    control:
      hosts:
        ctl:
          ansible_host: !unsafe '192.168.1.10'
          fleetmind_mac: !unsafe '52:54:00:00:00:01'
    worker:
      hosts:
        old-box:
          ansible_host: !unsafe '192.168.7.21'
          fleetmind_mac: !unsafe '52:54:00:00:00:02'
          fleetmind_class: !unsafe 'legacy'
          power_wol_prefix: 16
        no-mac:
          ansible_host: !unsafe '192.168.1.23'
"""


def fm(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEETMIND_STATE_DIR": str(tmp / "state")}
    return subprocess.run([FLEETMIND, "power", *args], capture_output=True, text=True, timeout=60, env=env)


def test_every_command_has_help(tmp_path: Path) -> None:
    for cmd in ([], ["wake"], ["status"], ["agent"]):
        out = fm(*cmd, "--help", tmp=tmp_path)
        assert out.returncode == 0 and "Usage" in out.stdout


def test_status_lists_nodes_and_where_a_wake_goes(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.yaml"
    inv.write_text(INVENTORY)
    out = fm("status", "-i", str(inv), "--json", tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    nodes = {n["node"]: n for n in json.loads(out.stdout)["nodes"]}
    assert nodes["ctl"]["control"] and not nodes["old-box"]["control"]
    assert nodes["old-box"]["class"] == "legacy" and nodes["old-box"]["wake_to"] == "255.255.255.255"
    assert nodes["no-mac"]["wake_to"] is None and "no MAC" in nodes["no-mac"]["problem"]
    env_out = subprocess.run(
        [FLEETMIND, "power", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FLEETMIND_POWER_INVENTORY": str(inv), "FLEETMIND_POWER_WOL_MODE": "directed"},
    )
    directed = {n["node"]: n["wake_to"] for n in json.loads(env_out.stdout)["nodes"]}
    assert directed["old-box"] == "192.168.255.255" and directed["ctl"] == "192.168.1.255"


def test_wake_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.yaml"
    inv.write_text(INVENTORY)
    unknown = fm("wake", "nope", "-i", str(inv), tmp=tmp_path)
    assert unknown.returncode == 1 and "no node 'nope'" in unknown.stderr and "old-box" in unknown.stderr
    no_mac = fm("wake", "no-mac", "-i", str(inv), tmp=tmp_path)
    assert no_mac.returncode == 1 and "no fleetmind_mac" in no_mac.stderr
    bad_mode = fm("wake", "old-box", "-i", str(inv), "--mode", "shout", tmp=tmp_path)
    assert bad_mode.returncode == 2 and "--mode" in bad_mode.stderr
    bad_addr = fm("wake", "old-box", "-i", str(inv), "--address", "not-an-ip", tmp=tmp_path)
    assert bad_addr.returncode == 1 and "not an IPv4 address" in bad_addr.stderr
    missing = fm("wake", "old-box", "-i", str(tmp_path / "none.yaml"), tmp=tmp_path)
    assert missing.returncode == 1 and "no inventory" in missing.stderr
    (tmp_path / "bad.yaml").write_text("all: [1, 2]\n")
    shape = fm("status", "-i", str(tmp_path / "bad.yaml"), tmp=tmp_path)
    assert shape.returncode == 1 and "expected shape" in shape.stderr


def test_a_bad_mac_in_the_inventory_is_named(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.yaml"
    inv.write_text("all:\n  hosts:\n    box:\n      fleetmind_mac: 'ff:ff:ff:ff:ff:ff'\n")
    out = fm("wake", "box", "-i", str(inv), tmp=tmp_path)
    assert out.returncode == 1 and "multicast or broadcast" in out.stderr
