"""The Wake-on-LAN magic packet: its wire format, the MAC addresses it may carry, and sending one over UDP.

A magic packet is six ``0xFF`` bytes followed by the target's MAC address sixteen times (102 bytes). A NIC with
Wake-on-LAN armed (``ethtool -s IFACE wol g``) powers its machine on when such a frame reaches it, whatever the
transport: fleetmind sends it as a UDP datagram (port 9, the discard port, by default) either to the limited
broadcast address (the sender's own segment) or to a subnet's directed broadcast address (routed to a segment
the sender is not on). This is the one place that builds the packet; the ``wake_node`` tool and
:mod:`fleetmind.power` both send through :func:`send_magic_packet`.
"""

from __future__ import annotations

import ipaddress
import re
import socket

WOL_PORT = 9
LIMITED_BROADCAST = "255.255.255.255"
PACKET_BYTES = 6 + 6 * 16

_MAC = re.compile(r"^([0-9A-Fa-f]{2})([:-]?)([0-9A-Fa-f]{2})(\2[0-9A-Fa-f]{2}){4}$")


def parse_mac(mac: str) -> bytes:
    """The six bytes of a unicast MAC written ``aa:bb:cc:dd:ee:ff``, ``aa-bb-...`` or ``aabbccddeeff``.

    Raises ``ValueError`` for anything else, the all-zero address and multicast/broadcast addresses (a magic
    packet for those would wake nothing, or everything)."""
    if not isinstance(mac, str) or not _MAC.match(mac):
        raise ValueError(f"{mac!r} is not a MAC address like aa:bb:cc:dd:ee:ff")
    raw = bytes.fromhex(re.sub(r"[:-]", "", mac))
    if not any(raw):
        raise ValueError("the all-zero MAC address is not a real interface")
    if raw[0] & 1:
        raise ValueError(f"{mac} is a multicast or broadcast MAC address, not one interface's")
    return raw


def format_mac(mac: str) -> str:
    """The canonical spelling: lower case, ``:`` between the bytes."""
    return ":".join(f"{b:02x}" for b in parse_mac(mac))


def magic_packet(mac: str) -> bytes:
    """Six ``0xFF`` bytes then the MAC sixteen times."""
    return b"\xff" * 6 + parse_mac(mac) * 16


def check_target(address: str, port: int) -> tuple[str, int]:
    """An IPv4 address and port a magic packet may go to (Wake-on-LAN has no IPv6 broadcast); ``ValueError`` if not."""
    try:
        addr = ipaddress.IPv4Address(address)
    except ValueError:
        raise ValueError(f"{address!r} is not an IPv4 address (magic packets go to an IPv4 broadcast)") from None
    if addr.is_unspecified or addr.is_multicast:
        raise ValueError(f"{address} cannot take a magic packet (unspecified or multicast)")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValueError(f"port {port!r} is not between 1 and 65535")
    return str(addr), port


def directed_broadcast(address: str, prefix: int) -> str:
    """The broadcast address of ``address``'s subnet (``192.168.1.21``, 24 → ``192.168.1.255``)."""
    if not isinstance(prefix, int) or isinstance(prefix, bool) or not 8 <= prefix <= 30:
        raise ValueError(f"a subnet prefix of {prefix!r} has no directed broadcast (8 to 30)")
    try:
        net = ipaddress.IPv4Network(f"{address}/{prefix}", strict=False)
    except ValueError:
        raise ValueError(f"{address!r} is not an IPv4 address") from None
    return str(net.broadcast_address)


def send_magic_packet(mac: str, *, address: str = LIMITED_BROADCAST, port: int = WOL_PORT) -> int:
    """Send one magic packet for ``mac`` to ``address:port``; returns the bytes sent.

    ``ValueError`` for a bad MAC, address or port; ``OSError`` when the network refuses it (no route, say)."""
    packet = magic_packet(mac)
    address, port = check_target(address, port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        return sock.sendto(packet, (address, port))
