"""A real magic packet on a real link: ``fleetmind power wake`` run inside a network namespace this test makes,
caught as an Ethernet frame by a raw socket on the other end of a veth pair in a second namespace.

Both the limited broadcast (``255.255.255.255``) and the directed broadcast of the node's subnet are sent; the
capture checks the frame is a broadcast UDP datagram to port 9 whose payload is six 0xFF bytes and the node's MAC
sixteen times. The namespaces are removed afterwards, also when the test fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

FLEETMIND = str(Path(sys.executable).parent / "fleetmind")
MAC = "52:54:00:ab:cd:ef"
# Runs inside the receiving namespace: one frame of UDP to port 9 on the veth, printed as hex.
CAPTURE = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.bind((sys.argv[1], 0))
    s.settimeout(20)
    print("ready", flush=True)
    while True:
        frame = s.recv(2048)
        ihl = (frame[14] & 0x0F) * 4
        udp = frame[14 + ihl:]
        if frame[14 + 9] == 17 and int.from_bytes(udp[2:4], "big") == 9:
            print(frame.hex(), flush=True)
            break
    """
)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def link() -> Iterator[tuple[str, str]]:
    """Two namespaces joined by a veth pair: the sender (10.77.9.1/24, default route on the link) and the node."""
    if os.geteuid() != 0:
        pytest.fail("needs root to make network namespaces (the suite runs as root)")
    tag = uuid.uuid4().hex[:6]
    sender, node = f"fm-wol-s-{tag}", f"fm-wol-n-{tag}"
    try:
        ip("netns", "add", sender)
        ip("netns", "add", node)
        ip("link", "add", f"ws{tag}", "netns", sender, "type", "veth", "peer", "name", f"wn{tag}", "netns", node)
        ip("-n", sender, "addr", "add", "10.77.9.1/24", "dev", f"ws{tag}")
        ip("-n", node, "addr", "add", "10.77.9.21/24", "dev", f"wn{tag}")
        for ns, dev in ((sender, f"ws{tag}"), (node, f"wn{tag}")):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", dev, "up")
        # the limited broadcast needs a route out; it stays on this veth, inside the namespaces
        ip("-n", sender, "route", "add", "default", "dev", f"ws{tag}")
        yield sender, node
    finally:
        for ns in (sender, node):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    assert sender not in left and node not in left


def write_inventory(path: Path) -> Path:
    path.write_text(
        "all:\n  children:\n    worker:\n      hosts:\n        old-box:\n"
        f"          ansible_host: !unsafe '10.77.9.21'\n          fleetmind_mac: !unsafe '{MAC}'\n"
    )
    return path


def capture_wake(link: tuple[str, str], inventory: Path, *mode: str) -> bytes:
    sender, node = link
    dev = "wn" + node.rsplit("-", 1)[1]
    cap = subprocess.Popen(
        ["ip", "netns", "exec", node, sys.executable, "-c", CAPTURE, dev],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert cap.stdout is not None
        assert cap.stdout.readline().strip() == "ready", cap.stderr.read() if cap.stderr else ""
        sent = subprocess.run(
            ["ip", "netns", "exec", sender, FLEETMIND, "power", "wake", "old-box", "-i", str(inventory), *mode],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        out, err = cap.communicate(timeout=30)
    finally:
        cap.kill()
        cap.wait()
    assert cap.returncode == 0, err
    return bytes.fromhex(out.strip())


@pytest.mark.parametrize(("mode", "to"), [("broadcast", "255.255.255.255"), ("directed", "10.77.9.255")])
def test_wake_sends_a_magic_packet_on_the_link(link: tuple[str, str], tmp_path: Path, mode: str, to: str) -> None:
    frame = capture_wake(link, write_inventory(tmp_path / "hosts.yaml"), "--mode", mode)
    assert frame[:6] == b"\xff" * 6, "an Ethernet broadcast frame"
    ihl = (frame[14] & 0x0F) * 4
    assert ".".join(str(b) for b in frame[14 + 16 : 14 + 20]) == to
    payload = frame[14 + ihl + 8 :]
    mac = bytes.fromhex(MAC.replace(":", ""))
    assert payload[:6] == b"\xff" * 6
    assert payload[6:102] == mac * 16
    assert len(payload[:102]) == 102 and payload[6:].count(mac) == 16
