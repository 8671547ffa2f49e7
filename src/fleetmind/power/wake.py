"""Wake one inventory node: pick where its magic packet goes, send it, and say what was sent.

``broadcast`` sends to the limited broadcast address (``255.255.255.255``, the sender's own segment: the common
case, a flat LAN); ``directed`` sends to the broadcast address of the node's subnet, which a router can pass on to
a segment the sender is not on. A node's ``power_wol_broadcast`` host var overrides either; otherwise the directed
address is computed from ``ansible_host`` and ``power_wol_prefix`` (24 when unset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fleetmind.contracts import wol
from fleetmind.power.errors import WakeError
from fleetmind.power.nodes import Node

Mode = Literal["broadcast", "directed"]
MODES: tuple[Mode, ...] = ("broadcast", "directed")
DEFAULT_PREFIX = 24


@dataclass(frozen=True)
class WakeResult:
    node: str
    mac: str
    address: str
    port: int
    sent_bytes: int

    def to_dict(self) -> dict[str, object]:
        return {
            "node": self.node,
            "mac": self.mac,
            "to": f"{self.address}:{self.port}",
            "sent_bytes": self.sent_bytes,
        }


def target_address(node: Node, mode: Mode) -> str:
    """Where ``node``'s magic packet goes in ``mode`` (its ``power_wol_broadcast`` when set)."""
    if mode not in MODES:
        raise WakeError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if node.wol_broadcast:
        return node.wol_broadcast
    if mode == "broadcast":
        return wol.LIMITED_BROADCAST
    if not node.address:
        raise WakeError(f"node {node.name} has no ansible_host, so its subnet's broadcast address is unknown")
    try:
        return wol.directed_broadcast(node.address, node.wol_prefix or DEFAULT_PREFIX)
    except ValueError as exc:
        raise WakeError(f"node {node.name}: {exc}") from None


def wake(node: Node, *, mode: Mode = "broadcast", address: str | None = None, port: int = wol.WOL_PORT) -> WakeResult:
    """Send ``node`` one magic packet; ``address`` overrides where it goes."""
    if not node.mac:
        raise WakeError(f"node {node.name} has no fleetmind_mac in the inventory: Wake-on-LAN needs its MAC address")
    try:
        mac = wol.format_mac(node.mac)
    except ValueError as exc:
        raise WakeError(f"node {node.name}: {exc}") from None
    to = address or target_address(node, mode)
    try:
        sent = wol.send_magic_packet(mac, address=to, port=port)
    except ValueError as exc:
        raise WakeError(f"node {node.name}: {exc}") from None
    except OSError as exc:
        raise WakeError(f"node {node.name}: could not send to {to}:{port}: {exc.strerror or exc}") from None
    return WakeResult(node=node.name, mac=mac, address=to, port=port, sent_bytes=sent)
