"""The test hosts: own addresses on one bridge, sshd logins (into Debian 13 where a host has a root filesystem),
shaped links, and nothing left behind, also when the test body fails."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.netns.hosts import LAN_100M, HostNetError, host_net, netem_available, wait_tcp


def _leftovers(netns_names: list[str], bridge: str, mounts: list[Path]) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    left = [n for n in netns_names if n in listed]
    left += [bridge] if f" {bridge}:" in links else []
    left += [str(m) for m in mounts if os.path.ismount(m)]
    return left


def test_hosts_have_addresses_sshd_and_a_debian_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")  # never taken under make test, which runs as root
    with host_net(2, tmp_path / "net", rootfs=[0]) as net:
        node, bare = net.hosts
        assert node.ip != bare.ip and node.ip.startswith(str(net.network.network_address)[:-1])
        release = node.ssh("cat /etc/os-release; python3 -c 'import sys; print(sys.version_info[:2])'")
        assert release.returncode == 0, release.stderr
        assert "VERSION_CODENAME=trixie" in release.stdout and "(3, 13)" in release.stdout
        # the bare host logs in to this machine's own file system, at its own address
        seen = bare.ssh("ip -4 -o addr show dev eth0")
        assert seen.returncode == 0 and f"inet {bare.ip}/" in seen.stdout, seen.stderr
        # hosts reach each other across the bridge: the node's sshd answers the bare host
        probe = bare.run("bash", "-c", f"exec 3<>/dev/tcp/{node.ip}/22 && head -c 7 <&3", timeout=10)
        assert probe.stdout == "SSH-2.0", probe.stderr
        # and nothing can leave: no namespace has a default route
        assert bare.run("ip", "route", "show", "default").stdout.strip() == ""


def test_a_shaped_link_limits_the_rate_and_adds_the_delay(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with host_net(2, tmp_path / "net") as net:
        client, server = net.hosts
        net.shape(LAN_100M)
        for dev, ns in (("eth0", server.netns), (server.bridge_port, None)):
            shown = subprocess.run(
                ["tc", *(["-n", ns] if ns else []), "class", "show", "dev", dev], capture_output=True, text=True
            ).stdout
            assert "htb 1:1" in shown and "rate 100Mbit" in shown, shown
        assert server.delay_by == ("netem" if netem_available() else "relay")
        # a payload crosses the modelled link intact (through the relay where the kernel has no netem)
        payload = tmp_path / "net" / "payload"
        payload.write_bytes(os.urandom(300_000))
        srv = server.start(
            "python3",
            "-m",
            "http.server",
            "--bind",
            server.ip,
            "8080",
            log=server.work / "http.log",
            cwd=payload.parent,
        )
        wait_tcp(server, server.ip, 8080, proc=srv)
        ip, port = server.reach(8080)
        fetched = subprocess.run(
            client.exec_argv("curl", "-sS", "--max-time", "20", f"http://{ip}:{port}/payload"),
            capture_output=True,
            check=True,
        ).stdout
        assert fetched == payload.read_bytes()
        net.shape(None)
        assert (
            "htb"
            not in subprocess.run(
                ["tc", "-n", server.netns, "qdisc", "show", "dev", "eth0"], capture_output=True, text=True
            ).stdout
        )


def test_everything_is_undone_even_when_the_body_fails(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    seen: dict[str, object] = {}
    with pytest.raises(RuntimeError, match="the test failed"), host_net(2, tmp_path / "net", rootfs=[1]) as net:
        seen.update(
            netns=[h.netns for h in net.hosts],
            bridge=net.bridge,
            mounts=list(net.hosts[1].mounts),
            pids=[p.pid for h in net.hosts for p in h.procs],
        )
        net.hosts[0].start("sleep", "600", log=net.hosts[0].work / "sleep.log")
        seen["pids"] = [*seen["pids"], net.hosts[0].procs[-1].pid]  # type: ignore[misc]
        raise RuntimeError("the test failed")
    assert _leftovers(seen["netns"], seen["bridge"], seen["mounts"]) == []  # type: ignore[arg-type]
    assert all(not Path(f"/proc/{pid}").exists() for pid in seen["pids"])  # type: ignore[attr-defined]


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="count"):
        with host_net(0, tmp_path):
            pass
    with pytest.raises(ValueError, match="rate"):
        from tests.netns.hosts import Link

        Link("broken", 0, 1.0)
    assert issubclass(HostNetError, RuntimeError)
