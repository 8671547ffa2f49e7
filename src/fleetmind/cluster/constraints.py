"""Nomad's placement constraints: the operators, and checking one ``Constraint`` against a node's facts.

A job, group or task may carry ``constraint { attribute = "${meta.fleetmind_class}" operator = "regexp" value =
"^avx" }``, which Nomad's API writes as ``{"LTarget": ..., "Operand": ..., "RTarget": ...}``. The job loader
(:mod:`.jobspec`) checks the operator against :data:`OPERATORS`; the embedded orchestrator checks every
constraint of a group against its one node with :func:`unmet` before it places anything, the way Nomad's
feasibility checker does (``scheduler/feasible.go``): targets are ``${meta.*}``, ``${attr.*}`` and
``${node.*}`` references or literals, a reference the node does not have is *missing* (only ``!=`` and
``is_not_set`` hold then), ``regexp`` searches like Go's ``MatchString``, the ``set_contains*`` operators split
both sides on commas, and the order operators compare numbers as numbers and anything else as text.

``distinct_hosts`` is about allocations, not about one node: the orchestrator counts what already runs on its
node (:func:`wants_distinct_hosts` says whether a job's or a group's constraints ask for it, as Nomad's
``DistinctHostsIterator`` reads them). Nomad takes it only at job and group level and refuses it on a task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Every operand Nomad accepts (api/constraint.go plus its aliases).
OPERATORS = frozenset(
    {
        "=",
        "==",
        "is",
        "!=",
        "not",
        "<",
        "<=",
        ">",
        ">=",
        "regexp",
        "set_contains",
        "set_contains_all",
        "set_contains_any",
        "is_set",
        "is_not_set",
        "version",
        "semver",
        "distinct_hosts",
        "distinct_property",
    }
)
# What a single-node engine can judge from the node alone (distinct_* are about several allocations or nodes,
# version/semver need Nomad's version-constraint grammar).
EVALUATED = OPERATORS - {"version", "semver", "distinct_hosts", "distinct_property"}
# Judged over the allocations a node already runs (the orchestrator's part, not :func:`unmet`'s).
DISTINCT_HOSTS = "distinct_hosts"
# What Go's strconv.ParseBool, which Nomad reads distinct_hosts' value with, reads as false.
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
# Operators whose RTarget may be empty.
NO_VALUE = frozenset({"is_set", "is_not_set", "distinct_hosts", "distinct_property"})
_REF = re.compile(r"^\$\{\s*([A-Za-z0-9_.\-]+)\s*\}$")


@dataclass(frozen=True)
class NodeFacts:
    """What constraints are checked against: the node's identity, attributes and meta."""

    node_id: str
    name: str
    datacenter: str
    region: str
    node_class: str = ""
    pool: str = "default"
    attributes: Mapping[str, str] | None = None
    meta: Mapping[str, str] | None = None

    def lookup(self, target: str) -> str | None:
        """The value of ``target`` on this node: a ``${...}`` reference resolved (None: missing), else itself."""
        match = _REF.match(target.strip())
        if not match:
            return target
        ref = match.group(1)
        fixed = {
            "node.unique.id": self.node_id,
            "node.unique.name": self.name,
            "node.datacenter": self.datacenter,
            "node.region": self.region,
            "node.class": self.node_class,
            "node.pool": self.pool,
        }
        if ref in fixed:
            return fixed[ref]
        for prefix, table in (("meta.", self.meta), ("attr.", self.attributes)):
            if ref.startswith(prefix):
                return (table or {}).get(ref[len(prefix) :])
        return None


def wants_distinct_hosts(constraints: list[Mapping[str, Any]]) -> bool:
    """Whether these (a job's or a group's own) constraints ask for one allocation per node: the first
    ``distinct_hosts`` decides, an empty value means true and a value Go cannot read as a bool still counts as
    true, as in Nomad's ``hasDistinctHostsConstraint``; ``value = "false"`` turns it off."""
    for constraint in constraints:
        if constraint.get("Operand") == DISTINCT_HOSTS:
            value = str(constraint.get("RTarget") or "")
            return value not in _GO_FALSE
    return False


def describe(constraint: Mapping[str, Any]) -> str:
    """Nomad's own rendering of a constraint (``Constraint.String()``): ``LTarget Operand RTarget``."""
    parts = (constraint.get("LTarget") or "", constraint.get("Operand") or "=", constraint.get("RTarget") or "")
    return " ".join(p for p in parts if p)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _items(text: str) -> set[str]:
    return {item.strip() for item in text.split(",") if item.strip()}


def holds(operand: str, left: str | None, right: str | None) -> bool:
    """Whether ``left operand right`` holds (None: the target is missing on the node)."""
    if operand in ("is_set", "is_not_set"):
        return (left is not None) == (operand == "is_set")
    if operand in ("!=", "not"):
        return left != right
    if left is None or right is None:
        return False
    if operand in ("=", "==", "is"):
        return left == right
    if operand == "regexp":
        try:
            return re.search(right, left) is not None
        except re.error:
            return False
    if operand in ("set_contains", "set_contains_all"):
        return _items(right) <= _items(left)
    if operand == "set_contains_any":
        return bool(_items(right) & _items(left))
    if operand in ("<", "<=", ">", ">="):
        ln, rn = _number(left), _number(right)
        pair: tuple[Any, Any] = (ln, rn) if ln is not None and rn is not None else (left, right)
        return {
            "<": pair[0] < pair[1],
            "<=": pair[0] <= pair[1],
            ">": pair[0] > pair[1],
            ">=": pair[0] >= pair[1],
        }[operand]
    raise ValueError(f"constraint operator {operand!r} cannot be checked against one node")


def unmet(constraint: Mapping[str, Any], node: NodeFacts) -> str | None:
    """Why ``constraint`` fails on ``node`` (``None`` when it holds), e.g.
    ``constraint not met: ${meta.fleetmind_class} regexp ^avx512$ (this node: avx2)``."""
    operand = str(constraint.get("Operand") or "=")
    ltarget = str(constraint.get("LTarget") or "")
    left = node.lookup(ltarget)
    right = node.lookup(str(constraint.get("RTarget") or ""))
    if holds(operand, left, right):
        return None
    seen = "missing" if left is None else repr(left)
    return f"constraint not met: {describe(constraint)} (this node: {ltarget} is {seen})"


def check_regexp(constraint: Mapping[str, Any]) -> str | None:
    """An error message when a ``regexp`` constraint's value is not a valid expression."""
    if constraint.get("Operand") != "regexp":
        return None
    try:
        re.compile(str(constraint.get("RTarget") or ""))
    except re.error as exc:
        return f"constraint {describe(constraint)}: not a valid regular expression: {exc}"
    return None
