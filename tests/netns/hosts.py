"""Test hosts with their own addresses: network namespaces on one bridge, each with an sshd, links like an old LAN.

:func:`host_net` makes a bridge in the root namespace (which keeps ``.1``: the control host), and per host a network
namespace with a veth whose other end is a port of that bridge, an address ``.10``, ``.11`` ... of a private /24
and an sshd listening on that address (this machine's ``/usr/sbin/sshd``, Debian's openssh-server from
scripts/apt-test.txt). With ``rootfs=True`` a host also gets a root filesystem of its own: an overlay of the cached
Debian 13 debootstrap (tests/infra), with /proc and /dev mounted, and its sshd puts every login into it
(``ChrootDirectory``), so a login sees Debian 13 and its Python, the way Ansible sees a real node. No namespace gets a
default route: nothing a host does can leave this machine.

:meth:`Host.shape` models a link (``LAN_1G``, ``LAN_100M``): the rate with an HTB class on both ends of the host's
veth, and the delay with ``tc netem`` on the host's egress when the kernel has it. Where it does not (this project's
Firecracker VMs ship a kernel without ``sch_netem``), :meth:`Host.reach` puts a delay relay
(tests/netns/delay_relay.py) in front of a port instead, and says so in :attr:`Host.delay_by`. The delay of a link is
one way, at each host's egress, so two hosts on ``LAN_100M`` see 1 ms more round trip than on a bare bridge.

Everything is undone on exit, also after a failure: processes started in a host (and any left in its namespace),
mounts, namespaces and the bridge. Namespaces left by a killed run (their creator's pid is in the name) are swept
at the next start. Used by tests (tests/netns, tests/provisioning) and benches (bench/rpc_hosts.py).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SSHD = "/usr/sbin/sshd"
PREFIX = "fmt"  # namespace names: fmt<creator pid>n<net tag>h<i>; bridges fmb<tag> carry "fmt<pid>" as alias
# A login's ChrootDirectory and every folder above it must be root's and not writable by others (sshd checks), which
# rules out anything under /tmp; only the mount points live here, the overlays' writable layers lie under ``work``.
MOUNT_BASE = Path("/run/fleetmind-testhosts")


class HostNetError(RuntimeError):
    """A test host could not be made (a missing program, no root, a command that failed)."""


@dataclass(frozen=True)
class Link:
    """An access link to the switch: its rate, and the delay a frame gets leaving the host (one way)."""

    name: str
    rate_mbit: int
    delay_ms: float

    def __post_init__(self) -> None:
        if self.rate_mbit <= 0 or self.delay_ms < 0:
            raise ValueError(f"link {self.name!r}: rate must be > 0 Mbit/s and delay >= 0 ms")


# An old LAN: the 1 Gbit at 0.2 ms and 100 Mbit at 1 ms, as added round trip between two hosts.
LAN_1G = Link("1 Gbit, +0.2 ms RTT", 1000, 0.1)
LAN_100M = Link("100 Mbit, +1 ms RTT", 100, 0.5)


def _run(*cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise HostNetError(f"{' '.join(cmd)} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
    return proc


@functools.cache
def netem_available() -> bool:
    """Whether this kernel has ``sch_netem`` (asked once, in a namespace made for the question)."""
    name = f"{PREFIX}{os.getpid()}probe"
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "-n", name, "link", "set", "lo", "up")
        return (
            _run("tc", "-n", name, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", check=False).returncode
            == 0
        )
    finally:
        _run("ip", "netns", "del", name, check=False)


def preflight() -> None:
    """Raise :class:`HostNetError` unless this process can make test hosts (root, ip, tc, sshd, ssh-keygen)."""
    if os.geteuid() != 0:
        raise HostNetError("test hosts need root (network namespaces, mounts)")
    missing = [p for p in ("ip", "tc", "ssh", "ssh-keygen", SSHD) if shutil.which(p) is None]
    if missing:
        raise HostNetError(f"missing {', '.join(missing)}: `make test` installs them (scripts/apt-test.txt)")


def sweep_stale() -> list[str]:
    """Delete namespaces (and their bridge ports) left behind by test runs whose process is gone."""
    removed = []
    for line in _run("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if not name.startswith(PREFIX) or "n" not in name[len(PREFIX) :]:
            continue
        pid = name[len(PREFIX) :].split("n", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            for p in _run("ip", "netns", "pids", name, check=False).stdout.split():
                with contextlib.suppress(OSError):
                    os.kill(int(p), signal.SIGKILL)
            _run("ip", "netns", "del", name, check=False)
            removed.append(name)
    for line in _run("ip", "-o", "link", "show", "type", "bridge", check=False).stdout.splitlines():
        dev = line.split(":")[1].strip().split("@")[0]
        found = re.search(r"\balias (\S+)", line)
        alias = found.group(1) if found else ""
        pid = alias[len(PREFIX) :]
        if dev.startswith("fmb") and alias.startswith(PREFIX) and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _run("ip", "link", "del", dev, check=False)
            removed.append(dev)
    return removed


@dataclass
class Host:
    """One test host: a namespace ``netns`` with ``eth0`` at ``ip``, an sshd, maybe a root filesystem ``root``."""

    name: str
    netns: str
    ip: str
    work: Path
    bridge_port: str
    net: HostNet
    root: Path | None = None
    link: Link | None = None
    delay_by: str = "none"  # how the link's delay is applied: none, netem, relay
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    mounts: list[Path] = field(default_factory=list)

    # -- running things ----------------------------------------------------------------------------------------

    def exec_argv(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *cmd]

    def run(self, *cmd: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess[str]:
        """A command in this host's network namespace (this machine's file system)."""
        proc = subprocess.run(self.exec_argv(*cmd), capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise HostNetError(f"{self.name}: {' '.join(cmd)} failed: {(proc.stderr or proc.stdout).strip()}")
        return proc

    def start(
        self, *cmd: str, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """A long-running process in this host's namespace; it is stopped when the net is torn down."""
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                self.exec_argv(*cmd), stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def ssh_argv(self, *cmd: str) -> list[str]:
        """``ssh`` from the root namespace to this host, as root, with the net's client key."""
        return [
            "ssh",
            *self.net.ssh_options(),
            f"root@{self.ip}",
            *cmd,
        ]

    def ssh(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.ssh_argv(*cmd), capture_output=True, text=True, timeout=timeout, check=False)

    # -- the link ----------------------------------------------------------------------------------------------

    def shape(self, link: Link | None) -> None:
        """Model ``link`` between this host and the switch (None: a bare bridge port again)."""
        for dev, ns in (("eth0", self.netns), (self.bridge_port, None)):
            tc = ["tc", *(["-n", ns] if ns else [])]
            _run(*tc, "qdisc", "del", "dev", dev, "root", check=False)
        self.link, self.delay_by = link, "none"
        if link is None:
            return
        for dev, ns in (("eth0", self.netns), (self.bridge_port, None)):
            tc = ["tc", *(["-n", ns] if ns else [])]
            rate = f"{link.rate_mbit}mbit"
            _run(*tc, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "1")
            _run(*tc, "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", rate, "ceil", rate)
        if link.delay_ms > 0:
            if netem_available():
                tc = ["tc", "-n", self.netns]
                _run(
                    *tc,
                    "qdisc",
                    "add",
                    "dev",
                    "eth0",
                    "parent",
                    "1:1",
                    "handle",
                    "10:",
                    "netem",
                    "delay",
                    f"{link.delay_ms}ms",
                )
                self.delay_by = "netem"
            else:
                self.delay_by = "relay"

    def reach(self, port: int) -> tuple[str, int]:
        """The address other hosts use for a service listening on ``ip:port`` here, delay included.

        With netem (or no delay) that is the service itself. Without netem a delay relay on this host takes the
        connection and holds every chunk, each way, for the link's delay (what netem on both hosts' egress adds
        to a round trip), since the kernel cannot; it runs in this namespace, so the traffic still crosses the
        shaped veth.
        """
        if self.delay_by != "relay" or self.link is None:
            return self.ip, port
        relay_port = _free_port_in(self)
        log = self.work / f"relay-{port}.log"
        proc = self.start(
            sys.executable,
            "-m",
            "tests.netns.delay_relay",
            "--listen",
            f"{self.ip}:{relay_port}",
            "--to",
            f"{self.ip}:{port}",
            "--delay-ms",
            str(self.link.delay_ms),
            log=log,
            cwd=REPO,
        )
        wait_tcp(self, self.ip, relay_port, proc=proc, log=log)
        return self.ip, relay_port

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        _stop(proc)
        with contextlib.suppress(ValueError):
            self.procs.remove(proc)


def _free_port_in(host: Host) -> int:
    # ports of a fresh namespace are all free but the ones this net started; pick high and check
    for _ in range(50):
        port = random.randint(20000, 60000)
        if host.run("sh", "-c", f"! ss -Htln 'sport = :{port}' | grep -q .").returncode == 0:
            return port
    raise HostNetError(f"{host.name}: no free port")


def wait_tcp(
    host: Host | None,
    ip: str,
    port: int,
    *,
    timeout: float = 30,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Until ``ip:port`` accepts a connection from the root namespace (the control host)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise HostNetError(f"{ip}:{port} exited with {proc.returncode} before listening: {tail}")
        try:
            with socket.create_connection((ip, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise HostNetError(f"{ip}:{port} not listening after {timeout}s")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


@dataclass
class HostNet:
    """A bridge ``bridge`` with the control host's ``gateway`` address, and ``hosts`` on it."""

    bridge: str
    gateway: str
    network: ipaddress.IPv4Network
    work: Path
    key: Path
    hosts: list[Host] = field(default_factory=list)

    def ssh_options(self) -> list[str]:
        return [
            "-i",
            str(self.key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            f"UserKnownHostsFile={self.work / 'known_hosts'}",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
        ]

    def authorize(self, public_key: str) -> None:
        """Let ``public_key`` log in as root on every host (as an installer's preseed puts the API's key)."""
        for host in self.hosts:
            with (host.work / "authorized_keys").open("a") as fh:
                fh.write(public_key.strip() + "\n")

    def shape(self, link: Link | None) -> None:
        for host in self.hosts:
            host.shape(link)


def _pick_network() -> ipaddress.IPv4Network:
    used = _run("ip", "-4", "-o", "addr", "show").stdout + _run("ip", "-4", "route", "show").stdout
    for _ in range(100):
        net = ipaddress.IPv4Network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24")
        if f"10.{net.network_address.packed[1]}.{net.network_address.packed[2]}." not in used:
            return net
    raise HostNetError("no free private /24 for the test net")


def _sshd_config(host: Host) -> str:
    lines = [
        f"ListenAddress {host.ip}:22",
        f"HostKey {host.work / 'ssh_host_ed25519_key'}",
        f"PidFile {host.work / 'sshd.pid'}",
        f"AuthorizedKeysFile {host.work / 'authorized_keys'}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # the key files lie under pytest's tmp folders, which sshd's owner checks would refuse
        "StrictModes no",
        "PrintMotd no",
        "Subsystem sftp internal-sftp",
        "LogLevel INFO",
    ]
    if host.root is not None:
        lines.append(f"ChrootDirectory {host.root}")
    return "\n".join(lines) + "\n"


def _make_rootfs(host: Host, base: Path) -> None:
    mount_point = MOUNT_BASE / host.netns
    upper, scratch = host.work / "upper", host.work / "overlay-work"
    for d in (mount_point, upper, scratch):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(MOUNT_BASE, 0o755)
    opts = f"lowerdir={base},upperdir={upper},workdir={scratch}"
    _run("mount", "-t", "overlay", "overlay", "-o", opts, str(mount_point))
    host.mounts.append(mount_point)
    host.root = mount_point
    _run("mount", "-t", "proc", "proc", str(mount_point / "proc"))
    host.mounts.append(mount_point / "proc")
    _run("mount", "--bind", "/dev", str(mount_point / "dev"))
    host.mounts.append(mount_point / "dev")
    (mount_point / "etc/hostname").write_text(host.name + "\n")
    hosts_file = mount_point / "etc/hosts"
    hosts_file.write_text(f"127.0.0.1 localhost\n{host.ip} {host.name}\n")
    # no service starts on its own inside (a package's postinst), the host's own processes are ours to start
    policy = mount_point / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)


def _add_host(net: HostNet, index: int, base: Path | None) -> Host:
    tag = net.bridge[len("fmb") :]
    name = f"node{index}"
    netns = f"{PREFIX}{os.getpid()}n{tag}h{index}"
    ip = str(net.network.network_address + 10 + index)
    work = net.work / name
    work.mkdir(parents=True)
    host = Host(name=name, netns=netns, ip=ip, work=work, bridge_port=f"fmv{tag}h{index}", net=net)
    net.hosts.append(host)
    _run("ip", "netns", "add", netns)
    _run("ip", "link", "add", host.bridge_port, "type", "veth", "peer", "name", "eth0", "netns", netns)
    _run("ip", "link", "set", host.bridge_port, "master", net.bridge, "up")
    _run("ip", "-n", netns, "link", "set", "lo", "up")
    _run("ip", "-n", netns, "addr", "add", f"{ip}/{net.network.prefixlen}", "dev", "eth0")
    _run("ip", "-n", netns, "link", "set", "eth0", "up")
    if base is not None:
        _make_rootfs(host, base)
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "ssh_host_ed25519_key"))
    (work / "authorized_keys").write_text((net.key.with_suffix(".pub")).read_text())
    (work / "sshd_config").write_text(_sshd_config(host))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    log = work / "sshd.log"
    proc = host.start(SSHD, "-D", "-e", "-f", str(work / "sshd_config"), log=log)
    wait_tcp(host, ip, 22, proc=proc, log=log)
    return host


def _teardown(net: HostNet) -> list[str]:
    problems = []
    for host in reversed(net.hosts):
        for proc in reversed(host.procs):
            _stop(proc)
        # anything else still in the namespace (a daemon that forked away from its group)
        for p in _run("ip", "netns", "pids", host.netns, check=False).stdout.split():
            with contextlib.suppress(OSError):
                os.kill(int(p), signal.SIGKILL)
                problems.append(f"{host.name}: killed stray pid {p}")
        for mount in reversed(host.mounts):
            for _ in range(20):
                if _run("umount", str(mount), check=False).returncode == 0:
                    break
                time.sleep(0.2)
            else:
                problems.append(f"{host.name}: could not unmount {mount}")
        if host.root is not None and not os.path.ismount(host.root):
            with contextlib.suppress(OSError):
                host.root.rmdir()
        _run("ip", "netns", "del", host.netns, check=False)
    _run("ip", "link", "del", net.bridge, check=False)
    return problems


@contextlib.contextmanager
def host_net(
    count: int, work: Path, *, rootfs: bool | Sequence[int] = False, rootfs_base: Path | None = None
) -> Iterator[HostNet]:
    """``count`` hosts on a fresh bridge, files under ``work``; ``rootfs`` True (all) or host indexes that get one.

    ``rootfs_base`` is the Debian tree to overlay (default: the cached debootstrap of tests/infra, made if missing).
    """
    if not 1 <= count <= 50:
        raise ValueError("count must be between 1 and 50")
    preflight()
    sweep_stale()
    wanted = set(range(count)) if rootfs is True else set(rootfs or ())
    base = None
    if wanted:
        if rootfs_base is None:
            from tests.infra.conftest import _debootstrap_base

            rootfs_base = _debootstrap_base()
        base = rootfs_base
    network = _pick_network()
    tag = f"{random.randint(0, 0xFFFF):04x}"  # interface names hold 15 characters: fmv<tag>h<i>
    work.mkdir(parents=True, exist_ok=True)
    net = HostNet(
        bridge=f"fmb{tag}",
        gateway=str(network.network_address + 1),
        network=network,
        work=work,
        key=work / "id_ed25519",
    )
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleetmind-test-net", "-f", str(net.key))
    try:
        _run("ip", "link", "add", net.bridge, "type", "bridge")
        _run("ip", "link", "set", net.bridge, "alias", f"{PREFIX}{os.getpid()}")
        _run("ip", "addr", "add", f"{net.gateway}/{network.prefixlen}", "dev", net.bridge)
        _run("ip", "link", "set", net.bridge, "up")
        for i in range(count):
            _add_host(net, i, base if i in wanted else None)
        yield net
    finally:
        problems = _teardown(net)
        if problems and sys.exc_info()[0] is None:
            raise HostNetError("; ".join(problems))
