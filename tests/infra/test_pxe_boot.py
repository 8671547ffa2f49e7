"""A QEMU machine boots from the network against the pxe_server role's own dnsmasq and nginx configuration.

A private network namespace holds a bridge, our dnsmasq and nginx (run on the files the role rendered) and the tap
device of a QEMU VM (TCG). In proxy mode (the role's default) a second namespace plays the LAN's own DHCP server, so
our dnsmasq only adds the boot information. The VM's iPXE ROM asks DHCP, gets our script's URL, and the test reads
nginx's access log: the script, then the installer's kernel, then its initrd. The kernel and initrd are small
placeholders made here (a bzImage header iPXE accepts), so nothing comes from the internet.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.conftest import (
    ANSIBLE_DIR,
    PLAYBOOKS,
    local_inventory,
    require_binaries,
    require_root,
    run_playbook,
)

pytestmark = pytest.mark.slow

SERVER = "10.77.0.1"
LAN_ROUTER = "10.77.0.254"
VM_MAC = "52:54:00:fe:ed:01"
QEMU_ROM = Path("/usr/lib/ipxe/qemu/pxe-e1000.rom")
IPXE_DIR = Path("/usr/lib/ipxe")  # Debian's ipxe: what the role copies into the TFTP root
BOOT_WAIT_S = 240  # TCG on a busy 2-core machine; normally ~20 s


def fake_bzimage() -> bytes:
    """The smallest file iPXE's `kernel` command accepts as a Linux bzImage (boot protocol 2.15 header)."""
    setup_sects = 4
    image = bytearray((setup_sects + 1) * 512 + 4096)
    image[0x1F1] = setup_sects
    struct.pack_into("<H", image, 0x1FE, 0xAA55)  # boot flag
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x206, 0x020F)  # protocol version
    image[0x211] = 0x01  # LOADED_HIGH
    struct.pack_into("<I", image, 0x22C, 0x7FFFFFFF)  # initrd_addr_max
    struct.pack_into("<I", image, 0x238, 2048)  # cmdline_size
    return bytes(image)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the process and what it started (its own session: timeout -> ip netns exec -> qemu)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=5)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def netns() -> Iterator[tuple[str, str]]:
    """Two namespaces: the provisioning server's (bridge br0 + tap0) and the LAN router's, joined by a veth."""
    require_root()
    require_binaries("ip", "dnsmasq", "nginx", "qemu-system-x86_64", "timeout", "curl")
    if not Path("/dev/net/tun").exists():
        pytest.skip("needs /dev/net/tun for QEMU's tap device")
    if not QEMU_ROM.exists():
        pytest.fail(f"needs {QEMU_ROM}, which `make test` installs (Debian package ipxe-qemu)")
    tag = f"{os.getpid() % 100000}"
    pxe, lan = f"fm-pxe-{tag}", f"fm-lan-{tag}"
    ip("netns", "add", pxe)
    ip("netns", "add", lan)
    try:
        ip("-n", pxe, "link", "set", "lo", "up")
        ip("-n", pxe, "link", "add", "br0", "type", "bridge")
        ip("-n", pxe, "addr", "add", f"{SERVER}/24", "dev", "br0")
        ip("-n", pxe, "link", "set", "br0", "up")
        ip("-n", pxe, "tuntap", "add", "dev", "tap0", "mode", "tap")
        ip("-n", pxe, "link", "set", "tap0", "master", "br0", "up")
        ip("-n", pxe, "link", "add", "lan0", "type", "veth", "peer", "name", "lan1", "netns", lan)
        ip("-n", pxe, "link", "set", "lan0", "master", "br0", "up")
        ip("-n", lan, "link", "set", "lo", "up")
        ip("-n", lan, "addr", "add", f"{LAN_ROUTER}/24", "dev", "lan1")
        ip("-n", lan, "link", "set", "lan1", "up")
        yield pxe, lan
    finally:
        subprocess.run(["ip", "netns", "del", pxe], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", lan], check=False, capture_output=True)


def local_paths(tmp: Path) -> dict[str, object]:
    """pxe_server variables that keep everything the role writes under ``tmp``, serving on port 80, installing and
    starting nothing (the tests start dnsmasq and nginx themselves)."""
    return {
        "pxe_server_http_port": 80,
        "pxe_server_http_root": str(tmp / "http"),
        "pxe_server_tftp_root": str(tmp / "tftp"),
        "pxe_server_dnsmasq_config": str(tmp / "dnsmasq.conf"),
        "pxe_server_nginx_site": str(tmp / "nginx-site.conf"),
        "pxe_server_nginx_site_link": "",
        "pxe_server_nginx_remove_default_site": False,
        "pxe_server_nginx_access_log": str(tmp / "access.log"),
        "pxe_server_install_packages": False,
        "pxe_server_manage_services": False,
    }


def render(tmp: Path, mode: str) -> Path:
    """Run the pxe_server role on this machine with every path under ``tmp``; returns the folder."""
    (tmp / "installer").mkdir()
    (tmp / "installer/linux").write_bytes(fake_bzimage())
    (tmp / "installer/initrd.gz").write_bytes(os.urandom(4096))
    inventory = local_inventory(tmp)
    run_playbook(
        PLAYBOOKS / "render_pxe.yml",
        inventory,
        extra_vars={
            "pxe_server_mode": mode,
            "pxe_server_interface": "br0",
            "pxe_server_address": SERVER,
            "pxe_server_proxy_network": "10.77.0.0",
            "pxe_server_dhcp_range_start": "10.77.0.100",
            "pxe_server_dhcp_range_end": "10.77.0.150",
            "pxe_server_dhcp_router": SERVER,
            **local_paths(tmp),
            "pxe_server_installer_kernel": str(tmp / "installer/linux"),
            "pxe_server_installer_initrd": str(tmp / "installer/initrd.gz"),
            "pxe_server_authorized_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFleetmindTestKeyOnly test"],
            "pxe_server_authorized_key_files": [],
            "pxe_server_hosts": [{"mac": VM_MAC.upper(), "hostname": "vm-one"}],
            "pxe_server_node_classes": [{"name": "worker", "disk": "/dev/vda", "enrolment_token": "fm-enrol-x"}],
            "pxe_server_call_home_script": str(ANSIBLE_DIR.parent / "pxe/call-home.sh"),
        },
    ).check()
    return tmp


def nginx_main_conf(tmp: Path) -> Path:
    """The main nginx.conf Debian ships would include the site; this one does the same with paths under tmp."""
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""user root;
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    include {tmp}/nginx-site.conf;
}}
"""
    )
    return conf


def fetched_paths(access_log: Path) -> list[tuple[str, str]]:
    """(path, status) of each GET in the access log (combined format)."""
    out = []
    if access_log.exists():
        for line in access_log.read_text().splitlines():
            try:
                request = line.split('"')[1]
                status = line.split('"')[2].split()[0]
            except IndexError:
                continue
            parts = request.split()
            if len(parts) >= 2 and parts[0] == "GET":
                out.append((parts[1], status))
    return out


WANTED = ["/boot.ipxe", "/debian-installer/amd64/linux", "/debian-installer/amd64/initrd.gz"]


@pytest.mark.parametrize("mode", ["proxy", "dhcp"])
def test_vm_netboots_from_the_rendered_config(netns: tuple[str, str], tmp_path: Path, mode: str) -> None:
    pxe, lan = netns
    tmp = render(tmp_path, mode)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(start(["ip", "netns", "exec", pxe, "nginx", "-c", str(nginx_main_conf(tmp))], tmp / "nginx.out"))
        procs.append(
            start(
                [
                    "ip",
                    "netns",
                    "exec",
                    pxe,
                    "dnsmasq",
                    "--keep-in-foreground",
                    "--user=root",
                    f"--conf-file={tmp / 'dnsmasq.conf'}",
                    f"--pid-file={tmp / 'dnsmasq.pid'}",
                    f"--dhcp-leasefile={tmp / 'dnsmasq.leases'}",
                    f"--log-facility={tmp / 'dnsmasq.log'}",
                ],
                tmp / "dnsmasq.out",
            )
        )
        if mode == "proxy":
            # the LAN's ordinary DHCP server: addresses only, no boot options
            procs.append(
                start(
                    [
                        "ip",
                        "netns",
                        "exec",
                        lan,
                        "dnsmasq",
                        "--keep-in-foreground",
                        "--user=root",
                        "--port=0",
                        "--interface=lan1",
                        "--bind-interfaces",
                        "--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,1h",
                        f"--dhcp-option=option:router,{LAN_ROUTER}",
                        f"--dhcp-leasefile={tmp / 'lan.leases'}",
                        f"--pid-file={tmp / 'lan.pid'}",
                        "--conf-file=/dev/null",
                        f"--log-facility={tmp / 'lan.log'}",
                    ],
                    tmp / "lan.out",
                )
            )
        time.sleep(0.5)
        for proc in procs:
            assert proc.poll() is None, (tmp / "dnsmasq.out").read_text() + (tmp / "nginx.out").read_text()
        # QEMU's network ROM is iPXE already and goes straight to the script, so the TFTP leg a plain PXE ROM takes
        # (chainloading Debian's iPXE) is fetched here from another host on the LAN
        for name in ("undionly.kpxe", "ipxe.efi"):
            tftp = subprocess.run(
                ["ip", "netns", "exec", lan, "curl", "-sS", "--max-time", "30", f"tftp://{SERVER}/{name}"],
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert tftp.returncode == 0, tftp.stderr
            assert tftp.stdout == (IPXE_DIR / name).read_bytes(), name
        qemu = start(
            [
                "timeout",
                str(BOOT_WAIT_S),
                "ip",
                "netns",
                "exec",
                pxe,
                "qemu-system-x86_64",
                "-machine",
                "pc,accel=tcg",
                "-m",
                "256",
                "-display",
                "none",
                "-vga",
                "none",
                "-monitor",
                "none",
                "-serial",
                f"file:{tmp / 'serial.log'}",
                "-no-reboot",
                "-boot",
                "order=n",
                "-netdev",
                "tap,id=n0,ifname=tap0,script=no,downscript=no",
                "-device",
                f"e1000,netdev=n0,mac={VM_MAC}",
            ],
            tmp / "qemu.out",
        )
        procs.append(qemu)
        deadline = time.monotonic() + BOOT_WAIT_S
        while time.monotonic() < deadline and qemu.poll() is None:
            if {p for p, _ in fetched_paths(tmp / "access.log")} >= set(WANTED):
                break
            time.sleep(0.5)
    finally:
        for proc in reversed(procs):
            stop(proc)
    fetched = fetched_paths(tmp / "access.log")
    logs = "\n".join(
        f"--- {name}\n{(tmp / name).read_text(errors='replace')[-3000:]}"
        for name in ("dnsmasq.log", "qemu.out", "nginx-error.log", "lan.log")
        if (tmp / name).exists()
    )
    paths = [p for p, _ in fetched]
    assert all(w in paths for w in WANTED), f"fetched {fetched}\n{logs}"
    # the script first, then the kernel, then the initrd, each served whole
    assert [paths.index(w) for w in WANTED] == sorted(paths.index(w) for w in WANTED)
    assert all(status == "200" for p, status in fetched if p in WANTED)
    leases = "\n".join(f.read_text() for f in tmp.glob("*.leases"))
    assert VM_MAC in leases.lower()
    if mode == "proxy":
        # the address came from the LAN's server, not from ours
        assert VM_MAC in (tmp / "lan.leases").read_text().lower()
        assert VM_MAC not in (tmp / "dnsmasq.leases").read_text().lower() if (tmp / "dnsmasq.leases").exists() else True
