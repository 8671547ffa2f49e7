"""node_facts, disk_usage, process_list, uptime, clock and wake_node (a real magic packet caught on loopback)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
from pathlib import Path

from fleetmind.tools.base import ToolContext
from fleetmind.tools.builtin.system import magic_packet
from fleetmind.tools.runner import ToolRunner

from .conftest import run_ok


def read(path: str) -> str:
    return Path(path).read_text()


async def test_node_facts_match_the_machine(runner: ToolRunner) -> None:
    facts = await run_ok(runner, "node_facts", {})
    assert facts["hostname"] == socket.gethostname()
    assert facts["cpu"]["logical_cores"] == os.cpu_count()
    cpuinfo = read("/proc/cpuinfo")
    assert all(flag in cpuinfo for flag in facts["cpu"]["flags"][:5])
    assert facts["memory"]["total"] > 100 * 2**20
    # the root filesystem is a disk of every machine that runs this: it is listed, with its real size
    root_fs = [line.split()[2] for line in read("/proc/mounts").splitlines() if line.split()[1] == "/"][-1]
    (root,) = [d for d in facts["disks"] if d["mount"] == "/"]
    assert root["fstype"] == root_fs and root["total"] == shutil.disk_usage("/").total > 0
    assert "flags" not in (await run_ok(runner, "node_facts", {"include_flags": False}))["cpu"]


async def test_disk_usage_process_list_uptime(runner: ToolRunner) -> None:
    usage = await run_ok(runner, "disk_usage", {"path": "/"})
    assert usage["total"] == shutil.disk_usage("/").total and 0 <= usage["percent_used"] <= 100
    assert (await runner.run("disk_usage", {"path": "/no/such/place"}, requester="t")).status == "error"
    stat = read("/proc/self/stat")
    me = stat[stat.index("(") + 1 : stat.rindex(")")]
    procs = await run_ok(runner, "process_list", {"name": me, "limit": 500})
    assert os.getpid() in [p["pid"] for p in procs["processes"]]
    assert all("cmdline" not in p for p in procs["processes"])
    up = await run_ok(runner, "uptime", {})
    assert up["seconds"] > 0 and len(up["loadavg"]) == 3
    booted = dt.datetime.fromisoformat(up["booted_at"])
    assert booted < dt.datetime.now(dt.UTC)


async def test_clock_with_and_without_a_time_zone(runner: ToolRunner) -> None:
    out = await run_ok(runner, "clock", {"timezone": "Asia/Tokyo"})
    utc, local = dt.datetime.fromisoformat(out["utc"]), dt.datetime.fromisoformat(out["local"])
    assert local.utcoffset() == dt.timedelta(hours=9) and abs((utc - local).total_seconds()) < 1
    assert abs(out["unix"] - dt.datetime.now(dt.UTC).timestamp()) < 60
    bad = await runner.run("clock", {"timezone": "Mars/Olympus"}, requester="t")
    assert bad.status == "invalid_arguments" and "IANA" in (bad.error or "")


async def test_wake_node_sends_a_magic_packet(runner: ToolRunner, context: ToolContext) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        context.wol_broadcast, context.wol_port = "127.0.0.1", receiver.getsockname()[1]
        out = await run_ok(runner, "wake_node", {"mac": "AA-BB-CC-dd-ee-01"})
        data, _ = receiver.recvfrom(1024)
    assert out["sent_bytes"] == 102 and out["mac"] == "aa-bb-cc-dd-ee-01"
    assert data == b"\xff" * 6 + bytes.fromhex("aabbccddee01") * 16 == magic_packet("aa:bb:cc:dd:ee:01")
    bad = await runner.run("wake_node", {"mac": "aa:bb:cc:dd:ee"}, requester="t")
    assert bad.status == "invalid_arguments"
