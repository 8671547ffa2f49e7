"""The nodes the power agent knows, read (never written) from the Ansible inventory the provisioning API keeps.

A node is a host of the YAML inventory with its groups and the host vars that matter here: ``ansible_host`` (its
address), ``fleetmind_mac`` (written at call-home; what Wake-on-LAN needs), ``fleetmind_class`` (the placement
class, :mod:`fleetmind.llm.node_class`), and optionally ``power_wol_broadcast`` (the address its magic packet goes
to) and ``power_wol_prefix`` (its subnet's prefix length, for a directed broadcast). Hosts in the ``control``
group are control nodes: the power agent never puts them to sleep. Values the provisioning API wrote carry the
``!unsafe`` tag; they are read as plain strings and validated where they are used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetmind.power.errors import InventoryReadError, UnknownNodeError

CONTROL_GROUP = "control"


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads Ansible's ``!unsafe`` scalars as plain strings."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Node:
    """One inventory host, as the power agent sees it."""

    name: str
    groups: tuple[str, ...]
    address: str | None = None
    mac: str | None = None
    node_class: str | None = None
    wol_broadcast: str | None = None
    wol_prefix: int | None = None
    vars: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def control(self) -> bool:
        return CONTROL_GROUP in self.groups


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InventoryReadError(f"the inventory is not in the expected shape: {where} must be a mapping")
    return value


def _walk(group: dict[str, Any], name: str, where: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for host, hvars in _mapping(group.get("hosts"), f"{where}.hosts").items():
        yield str(host), name, _mapping(hvars, f"{where}.hosts.{host}")
    for child, body in _mapping(group.get("children"), f"{where}.children").items():
        yield from _walk(_mapping(body, f"{where}.children.{child}"), str(child), f"{where}.children.{child}")


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any, host: str, key: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InventoryReadError(f"host {host}: {key} must be a whole number, not {value!r}") from None


def parse_inventory(text: str) -> dict[str, Node]:
    """Every host of a YAML inventory, with all the groups it is in (its vars merged, the first seen winning)."""
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise InventoryReadError(f"the inventory is not valid YAML: {exc}") from None
    top = _mapping(_mapping(data, "the document").get("all"), "all")
    groups: dict[str, list[str]] = {}
    hostvars: dict[str, dict[str, Any]] = {}
    for host, group, hvars in _walk(top, "all", "all"):
        groups.setdefault(host, [])
        if group not in groups[host]:
            groups[host].append(group)
        merged = hostvars.setdefault(host, {})
        for key, value in hvars.items():
            merged.setdefault(str(key), value)
    nodes: dict[str, Node] = {}
    for host, hv in hostvars.items():
        nodes[host] = Node(
            name=host,
            groups=tuple(groups[host]),
            address=_opt_str(hv.get("ansible_host")),
            mac=_opt_str(hv.get("fleetmind_mac")),
            node_class=_opt_str(hv.get("fleetmind_class")),
            wol_broadcast=_opt_str(hv.get("power_wol_broadcast")),
            wol_prefix=_opt_int(hv.get("power_wol_prefix"), host, "power_wol_prefix"),
            vars=hv,
        )
    return nodes


def read_inventory(path: Path) -> dict[str, Node]:
    """The nodes of the inventory file at ``path`` (a missing file is an error: there is nothing to wake)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryReadError(f"no inventory at {path} (set FLEETMIND_POWER_INVENTORY or --inventory)") from None
    except OSError as exc:
        raise InventoryReadError(f"cannot read the inventory {path}: {exc.strerror}") from None
    return parse_inventory(text)


def find_node(nodes: dict[str, Node], name: str) -> Node:
    node = nodes.get(name) or nodes.get(name.lower())
    if node is None:
        known = ", ".join(sorted(nodes)) or "none"
        raise UnknownNodeError(f"no node {name!r} in the inventory (known: {known})")
    return node
