"""The Ansible inventory (YAML, one group per role) and the only code that writes it.

Every change happens under an exclusive file lock (``<inventory>.lock``) as read, modify, write to a temporary
file in the same folder, fsync, ``os.replace``, fsync the folder: a reader (ansible-playbook starting a run)
sees the old file or the new one, never half of either, and concurrent call-homes -- threads or processes --
queue on the lock instead of overwriting each other. A file we cannot parse is never overwritten. Groups and
hosts we do not manage (a control node added by hand, ``all.vars``) are kept. Every value we write for a node
(its address, role, MAC and facts) is written with Ansible's ``!unsafe`` tag, so even a value that slipped past
validation would never be templated by Jinja; the host name, a key, is an RFC 1123 name by then."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout

from fleetmind.atomic import write_atomic
from fleetmind.provisioning.errors import InventoryError

HEADER = "# Managed by fleetmind's provisioning API. Hand edits are kept, comments are not.\n"


class Unsafe(str):
    """A string Ansible must never template (YAML tag ``!unsafe``)."""

    __slots__ = ()


# libyaml's C loader and dumper when present: the whole inventory is re-read and re-written per call-home
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    pass


class _Dumper(_BaseDumper):  # type: ignore[valid-type,misc]
    pass


def _construct_unsafe(loader: Any, node: yaml.Node) -> Unsafe:
    assert isinstance(node, yaml.ScalarNode)
    return Unsafe(loader.construct_scalar(node))


def _represent_unsafe(dumper: Any, data: Unsafe) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", str(data), style="'")


_Loader.add_constructor("!unsafe", _construct_unsafe)
_Dumper.add_representer(Unsafe, _represent_unsafe)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=False)


def _unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return Unsafe(value)
    if isinstance(value, list):
        return [_unsafe(v) for v in value]
    if isinstance(value, dict):
        return {k: _unsafe(v) for k, v in value.items()}
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Unsafe):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class HostEntry:
    hostname: str
    group: str
    vars: dict[str, Any]

    @property
    def ip(self) -> str | None:
        value = self.vars.get("ansible_host")
        return str(value) if value is not None else None

    @property
    def mac(self) -> str | None:
        value = self.vars.get("fleetmind_mac")
        return str(value) if value is not None else None


def _dict(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InventoryError(f"inventory is not in the expected shape: {where} must be a mapping")
    return value


def _walk(group: dict[str, Any], name: str, where: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for host, hvars in _dict(group.get("hosts"), f"{where}.hosts").items():
        yield str(host), name, _dict(hvars, f"{where}.hosts.{host}")
    for child, body in _dict(group.get("children"), f"{where}.children").items():
        yield from _walk(_dict(body, f"{where}.children.{child}"), str(child), f"{where}.children.{child}")


class Inventory:
    """The YAML inventory at ``path``; nodes go into ``all.children.<role>.hosts``."""

    def __init__(self, path: Path, *, roles: Sequence[str], lock_timeout: float = 30.0) -> None:
        self.path = path
        self.roles = tuple(roles)
        self.lock_timeout = lock_timeout

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path) + ".lock", timeout=self.lock_timeout)
        try:
            with lock:
                yield
        except Timeout:
            raise InventoryError(f"inventory lock not acquired within {self.lock_timeout:g}s") from None

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise InventoryError(f"cannot read inventory {self.path}: {exc.strerror}") from None
        try:
            data = load_yaml(text)
        except yaml.YAMLError as exc:
            raise InventoryError(f"inventory {self.path} is not valid YAML; not touching it: {exc}") from None
        return _dict(data, "the document")

    def _write(self, data: dict[str, Any]) -> None:
        try:
            write_atomic(self.path, (HEADER + dump_yaml(data)).encode("utf-8"), mode=0o600)
        except OSError as exc:
            raise InventoryError(f"cannot write inventory {self.path}: {exc.strerror}") from None

    # -- reading -------------------------------------------------------------------------------------------
    def hosts(self) -> dict[str, HostEntry]:
        """Every host in the file, in any group (a host in several groups is reported once, first wins)."""
        data = self._read()
        out: dict[str, HostEntry] = {}
        for host, group, hvars in _walk(_dict(data.get("all"), "all"), "all", "all"):
            out.setdefault(host, HostEntry(host, group, _plain(hvars)))
        return out

    def get(self, hostname: str) -> HostEntry | None:
        return self.hosts().get(hostname)

    # -- writing -------------------------------------------------------------------------------------------
    def upsert(
        self,
        hostname: str,
        *,
        role: str,
        ip: str,
        mac: str | None = None,
        facts: dict[str, Any] | None = None,
        placement: dict[str, str] | None = None,
    ) -> bool:
        """Put ``hostname`` in the ``role`` group (no other role group) with these vars; True if changed.

        ``placement`` adds the node's class vars (:meth:`fleetmind.llm.node_class.Placement.host_vars`)."""
        if role not in self.roles:
            raise ValueError(f"role {role!r} is not one of {self.roles}")
        # every value is written !unsafe, the address included (an IPv6 scope id once carried Jinja through it)
        hvars: dict[str, Any] = {"ansible_host": Unsafe(ip), "fleetmind_role": Unsafe(role)}
        if mac is not None:
            hvars["fleetmind_mac"] = Unsafe(mac)
        if facts:
            hvars["fleetmind_facts"] = _unsafe(facts)
        for key, value in (placement or {}).items():
            hvars[key] = Unsafe(value)
        with self._locked():
            data = self._read()
            before = copy.deepcopy(data)
            top = data.setdefault("all", {})
            top = _dict(top, "all")
            data["all"] = top
            children = _dict(top.get("children"), "all.children")
            top["children"] = children
            for other in self.roles:
                if other != role and isinstance(children.get(other), dict):
                    hosts = _dict(children[other].get("hosts"), f"all.children.{other}.hosts")
                    hosts.pop(hostname, None)
            group = _dict(children.get(role), f"all.children.{role}")
            children[role] = group
            hosts = _dict(group.get("hosts"), f"all.children.{role}.hosts")
            group["hosts"] = hosts
            hosts[hostname] = hvars
            if data == before and self.path.exists():
                return False
            self._write(data)
            return True
