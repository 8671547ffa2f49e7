"""Input variables of a Nomad job file: ``variable "name" { type, default, description }`` blocks.

Values given by the caller (``nomad job run -var``, or ``load_job(path, {...})``) are converted to the
declared type the way HCL converts them (a number passed for a ``string`` variable becomes its decimal text,
``"8080"`` passed for a ``number`` becomes 8080). An undeclared value or a required variable left without
one is an error, as in Nomad.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetmind.cluster.hcl import Evaluator, HclEvalError

_TYPE = re.compile(r"^\s*(?:\$\{)?\s*(?P<type>[a-z]+(?:\(\s*[a-z]+(?:\(\s*[a-z]+\s*\))?\s*\))?)\s*\}?\s*$")
PRIMITIVES = ("string", "number", "bool", "any")
COLLECTIONS = ("list", "set", "map", "tuple")


@dataclass(frozen=True)
class Variable:
    """One declared input variable."""

    name: str
    type: str = "any"
    default: Any = None
    has_default: bool = False
    description: str = ""


def parse_type(raw: Any) -> str:
    """python-hcl2's rendering of a type constraint (``string``, ``${list(string)}``) → ``"list(string)"``."""
    if raw is None:
        return "any"
    match = _TYPE.match(str(raw))
    if not match:
        raise HclEvalError(f"unsupported variable type {raw!r} (use string, number, bool, list(T), map(T) or any)")
    text = re.sub(r"\s+", "", match.group("type"))
    outer = text.split("(", 1)[0]
    if outer not in PRIMITIVES + COLLECTIONS:
        raise HclEvalError(f"unsupported variable type {text!r} (use string, number, bool, list(T), map(T) or any)")
    return text


def coerce(value: Any, type_: str) -> Any:
    """Convert ``value`` to HCL type ``type_`` or raise HclEvalError saying why not."""
    if type_ == "any" or value is None:
        return value
    if type_ == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float | str):
            return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        raise HclEvalError(f"a {type(value).__name__} is not a string")
    if type_ == "number":
        if isinstance(value, bool):
            raise HclEvalError("a bool is not a number")
        if isinstance(value, int | float):
            return value
        try:
            number = float(str(value).strip())
        except ValueError:
            raise HclEvalError(f"{value!r} is not a number") from None
        return int(number) if number.is_integer() else number
    if type_ == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise HclEvalError(f"{value!r} is not a bool")
    outer, _, inner = type_.partition("(")
    inner = inner[:-1] or "any"
    if outer == "map":
        if not isinstance(value, Mapping):
            raise HclEvalError(f"a {type(value).__name__} is not a map")
        return {str(k): coerce(v, inner) for k, v in value.items()}
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise HclEvalError(f"a {type(value).__name__} is not a {outer}")
    return [coerce(v, inner) for v in value]


def declare(name: str, body: Mapping[str, Any]) -> Variable:
    """A ``variable`` block's body (python-hcl2 form) → :class:`Variable`."""
    unknown = set(body) - {"type", "default", "description", "sensitive", "nullable", "validation"}
    unknown = {k for k in unknown if not k.startswith("__")}
    if unknown:
        raise HclEvalError(f"variable {name!r}: unknown field(s) {', '.join(sorted(unknown))}")
    no_vars = Evaluator({})
    type_ = parse_type(body.get("type"))
    description = no_vars.value(body["description"]) if "description" in body else ""
    if "default" in body:
        default = coerce(no_vars.value(body["default"]), type_)
        return Variable(name, type_, default, True, str(description))
    return Variable(name, type_, None, False, str(description))


def resolve(declared: Mapping[str, Variable], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Declared variables + the caller's values → the ``var.*`` namespace (errors name the variable)."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise HclEvalError(
            f"value(s) given for undeclared variable(s) {', '.join(unknown)} "
            f"(declared: {', '.join(sorted(declared)) or 'none'})"
        )
    values: dict[str, Any] = {}
    for name, var in declared.items():
        if name in given:
            try:
                values[name] = coerce(given[name], var.type)
            except HclEvalError as exc:
                raise HclEvalError(f"variable {name!r} ({var.type}): {exc}") from None
        elif var.has_default:
            values[name] = var.default
        else:
            raise HclEvalError(f"variable {name!r} is required (no default) but no value was given")
    return values
