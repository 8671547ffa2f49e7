"""Tools about this machine: ``node_facts``, ``disk_usage``, ``process_list``, ``uptime``, ``clock`` and
``wake_node`` (a Wake-on-LAN magic packet to the configured broadcast address). They read ``/proc`` and ``/sys``
directly, the way Ansible's fact gathering does, so they work on any Linux node without extra packages."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import socket
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fleetmind.contracts import wol
from fleetmind.tools.base import ToolCall, tool
from fleetmind.tools.errors import ToolArgumentsError, ToolExecutionError

REAL_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "zfs", "f2fs", "overlay", "ntfs", "exfat", "jfs"}


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


def _cpuinfo() -> dict[str, Any]:
    blocks = Path("/proc/cpuinfo").read_text().strip().split("\n\n")
    first = dict(
        (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in blocks[0].splitlines()) if k.strip()
    )
    physical = {
        (m.get("physical id"), m.get("core id"))
        for m in (
            dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in b.splitlines())) for b in blocks
        )
    }
    return {
        "model": first.get("model name", platform.processor()),
        "logical_cores": os.cpu_count(),
        "physical_cores": len(physical) if None not in next(iter(physical), (None,)) else None,
        "flags": sorted(first.get("flags", "").split()),
        "mhz": float(first["cpu MHz"]) if "cpu MHz" in first else None,
    }


def _disks() -> list[dict[str, Any]]:
    disks = []
    seen: set[str] = set()
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount, fstype, *_ = line.split()
        if fstype not in REAL_FS or mount in seen:
            continue
        seen.add(mount)
        try:
            usage = shutil.disk_usage(mount)
        except OSError:
            continue
        disks.append({"device": device, "mount": mount, "fstype": fstype, "total": usage.total, "free": usage.free})
    return disks


@tool(
    "node_facts",
    "Facts about this node: CPU (model, cores, flags), memory, disks, OS, kernel, Python.",
    {"type": "object", "properties": {"include_flags": {"type": "boolean", "default": True}}},
    timeout_s=15.0,
)
def node_facts(call: ToolCall) -> dict[str, Any]:
    cpu = _cpuinfo()
    if not call.args.get("include_flags", True):
        cpu.pop("flags")
    mem = _meminfo()
    uname = platform.uname()
    return {
        "hostname": socket.gethostname(),
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", uname.system),
        "kernel": uname.release,
        "arch": uname.machine,
        "python": platform.python_version(),
        "cpu": cpu,
        "memory": {"total": mem.get("MemTotal"), "available": mem.get("MemAvailable"), "swap": mem.get("SwapTotal")},
        "disks": _disks(),
        "loadavg": list(os.getloadavg()),
    }


@tool(
    "disk_usage",
    "Total, used and free bytes of the filesystem holding a path (default /).",
    {"type": "object", "properties": {"path": {"type": "string", "default": "/", "maxLength": 4096}}},
    timeout_s=10.0,
)
def disk_usage(call: ToolCall) -> dict[str, Any]:
    path = call.args.get("path", "/")
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        raise ToolExecutionError(f"cannot stat {path}: {exc.strerror}") from None
    return {
        "path": path,
        "total": usage.total,
        "used": usage.used,
        "free": usage.free,
        "percent_used": round(100 * usage.used / usage.total, 1) if usage.total else 0.0,
    }


@tool(
    "process_list",
    "The biggest processes by memory: pid, name, state, user id, resident MB, CPU seconds.",
    {
        "type": "object",
        "properties": {
            "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 20},
            "name": {"type": "string", "maxLength": 100},
        },
    },
    timeout_s=15.0,
)
def process_list(call: ToolCall) -> dict[str, Any]:
    # command lines are left out on purpose: they can hold secrets (tokens passed as arguments)
    tick = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    procs: list[dict[str, Any]] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            uid = entry.stat().st_uid
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        procs.append(
            {
                "pid": int(entry.name),
                "name": name,
                "state": fields[0],
                "uid": uid,
                "rss_mb": round(int(fields[21]) * page / 2**20, 1),
                "cpu_s": round((int(fields[11]) + int(fields[12])) / tick, 2),
            }
        )
    wanted = call.args.get("name")
    if wanted:
        procs = [p for p in procs if wanted in p["name"]]
    procs.sort(key=lambda p: p["rss_mb"], reverse=True)
    return {"count": len(procs), "processes": procs[: int(call.args.get("limit", 20))]}


@tool("uptime", "How long this node has been up, when it booted, and its load averages.", timeout_s=5.0)
def uptime(call: ToolCall) -> dict[str, Any]:
    seconds = float(Path("/proc/uptime").read_text().split()[0])
    boot = dt.datetime.fromtimestamp(time.time() - seconds, dt.UTC)
    return {
        "seconds": seconds,
        "booted_at": boot.isoformat(timespec="seconds"),
        "human": str(dt.timedelta(seconds=int(seconds))),
        "loadavg": list(os.getloadavg()),
    }


@tool(
    "clock",
    "The current date and time (UTC and, optionally, an IANA time zone such as Europe/Paris).",
    {"type": "object", "properties": {"timezone": {"type": "string", "maxLength": 64}}},
    timeout_s=5.0,
)
def clock(call: ToolCall) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    out: dict[str, Any] = {
        "utc": now.isoformat(timespec="seconds"),
        "unix": round(now.timestamp(), 3),
        "weekday": now.strftime("%A"),
    }
    name = call.args.get("timezone")
    if name:
        try:
            local = now.astimezone(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolArgumentsError(f"unknown time zone {name!r} (use an IANA name like Europe/Paris)") from None
        out.update(timezone=name, local=local.isoformat(timespec="seconds"), local_weekday=local.strftime("%A"))
    return out


def magic_packet(mac: str) -> bytes:
    """Six 0xFF bytes then the MAC sixteen times (:func:`fleetmind.contracts.wol.magic_packet`)."""
    try:
        return wol.magic_packet(mac)
    except ValueError as exc:
        raise ToolArgumentsError(str(exc)) from None


@tool(
    "wake_node",
    "Wake a node by Wake-on-LAN: send a magic packet for its MAC to the cluster's broadcast address.",
    {"type": "object", "properties": {"mac": {"type": "string", "maxLength": 17}}, "required": ["mac"]},
    timeout_s=5.0,
)
def wake_node(call: ToolCall) -> dict[str, Any]:
    # the address and port come from configuration, not from the model: this is not a general UDP sender
    mac = call.args["mac"]
    magic_packet(mac)  # a bad MAC is the caller's mistake (ToolArgumentsError), not a failed send
    ctx = call.context
    try:
        sent = wol.send_magic_packet(mac, address=ctx.wol_broadcast, port=ctx.wol_port)
    except (OSError, ValueError) as exc:
        raise ToolExecutionError(f"could not send to {ctx.wol_broadcast}:{ctx.wol_port}: {exc}") from None
    return {"mac": call.args["mac"].lower(), "sent_bytes": sent, "to": f"{ctx.wol_broadcast}:{ctx.wol_port}"}
