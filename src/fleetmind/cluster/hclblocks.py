"""Read the blocks and attributes python-hcl2 (v8) makes of a job file, with errors that point at the source.

python-hcl2 gives labelled blocks as ``{'"label"': {...}}`` lists and attributes as raw values;
:class:`BlockReader` walks them, evaluates values with :class:`~fleetmind.cluster.hcl.Evaluator`, checks
types and known fields, and builds :class:`~fleetmind.cluster.errors.JobSpecError` messages with the file,
the line (found by searching the source for the block path, since python-hcl2 keeps no positions) and the
field path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleetmind.cluster import variables as hclvars
from fleetmind.cluster.durations import parse_duration
from fleetmind.cluster.errors import JobSpecError
from fleetmind.cluster.hcl import Evaluator, HclEvalError

Ctx = tuple[tuple[str, str | None], ...]


def _is_block_list(value: Any) -> bool:
    def is_block(item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        if item.get("__is_block__"):
            return True
        inner = next(iter(item.values()), None) if len(item) == 1 else None
        return isinstance(inner, dict) and bool(inner.get("__is_block__"))

    return isinstance(value, list) and bool(value) and all(is_block(i) for i in value)


class BlockReader:
    """Typed, checked access to parsed blocks, with the context for error messages."""

    def __init__(self, path: Path, text: str, evaluator: Evaluator) -> None:
        self.path, self.text, self.ev = path, text, evaluator

    # -- errors -------------------------------------------------------------------------------------------
    def line_of(self, ctx: Ctx, field: str | None = None) -> int | None:
        pos, found = 0, False
        for kind, label in ctx:
            lab = r'\s*"[^"\n]*"' if label is not None else ""
            match = re.compile(rf"^\s*{re.escape(kind)}{lab}\s*\{{", re.M).search(self.text, pos)
            if label is not None:
                for candidate in re.compile(rf'^\s*{re.escape(kind)}\s*"([^"\n]*)"\s*\{{', re.M).finditer(
                    self.text, pos
                ):
                    if Evaluator({}).key(candidate.group(1)) == label or "${" in candidate.group(1):
                        match = candidate
                        break
            if not match:
                break
            pos, found = match.start(), True
        if field:
            match = re.compile(rf'^\s*"?{re.escape(field)}"?\s*[={{"]', re.M).search(self.text, pos)
            if match:
                pos, found = match.start(), True
        return self.text.count("\n", 0, pos) + 1 if found else None

    def error(self, ctx: Ctx, field: str | None, message: str) -> JobSpecError:
        where = " > ".join(f'{k} "{lab}"' if lab is not None else k for k, lab in ctx)
        if field:
            where = f"{where}.{field}" if where else field
        line = self.line_of(ctx, field)
        loc = f"{self.path}:{line}" if line else str(self.path)
        return JobSpecError(f"{loc}: {where}: {message}" if where else f"{loc}: {message}")

    # -- generic access -----------------------------------------------------------------------------------
    def blocks(self, body: Mapping[str, Any], name: str, ctx: Ctx) -> list[tuple[str | None, dict[str, Any]]]:
        raw = body.get(name)
        if raw is None:
            return []
        if isinstance(raw, dict) and not _is_block_list([raw]):
            return [(None, raw)]  # `meta = { ... }` written as an attribute
        if not _is_block_list(raw):
            raise self.error(ctx, name, f"expected a {name} block")
        out: list[tuple[str | None, dict[str, Any]]] = []
        for item in raw:
            if item.get("__is_block__"):
                out.append((None, item))
            else:
                (label, inner), *_ = item.items()
                try:
                    out.append((str(self.ev.template(label[1:-1] if label.startswith('"') else label)), inner))
                except HclEvalError as exc:
                    raise self.error(ctx, name, str(exc)) from None
        return out

    def one_block(self, body: Mapping[str, Any], name: str, ctx: Ctx) -> dict[str, Any] | None:
        found = self.blocks(body, name, ctx)
        if len(found) > 1:
            raise self.error(ctx, name, f"only one {name} block is allowed here")
        return found[0][1] if found else None

    def check_fields(self, body: Mapping[str, Any], allowed: set[str], ctx: Ctx) -> None:
        for key in body:
            if not key.startswith("__") and key not in allowed:
                raise self.error(
                    ctx, key, f"unknown or unsupported field (supported here: {', '.join(sorted(allowed))})"
                )

    def get(
        self,
        body: Mapping[str, Any],
        name: str,
        ctx: Ctx,
        kind: type | tuple[type, ...],
        default: Any = None,
        *,
        required: bool = False,
    ) -> Any:
        if name not in body:
            if required:
                raise self.error(ctx, name, "is required")
            return default
        try:
            value = self.ev.value(body[name])
        except HclEvalError as exc:
            raise self.error(ctx, name, str(exc)) from None
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if kind is str and isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.error(ctx, name, f"expected {names}, got {value!r}")
        return value

    def duration(
        self,
        body: Mapping[str, Any],
        name: str,
        ctx: Ctx,
        default: int | None = None,
        *,
        required: bool = False,
    ) -> int | None:
        value = self.get(body, name, ctx, (str, int), None, required=required)
        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(ctx, name, str(exc)) from None

    def str_map(self, body: Mapping[str, Any], name: str, ctx: Ctx) -> dict[str, str] | None:
        found = self.blocks(body, name, ctx)
        if not found:
            return None
        merged: dict[str, str] = {}
        for _, block in found:
            for key in block:
                if key.startswith("__"):
                    continue
                value = self.get(block, key, (*ctx, (name, None)), (str, int, float, bool))
                merged[self.ev.key(key)] = hclvars.coerce(value, "string")
        return merged

    def str_list(self, body: Mapping[str, Any], name: str, ctx: Ctx) -> list[str] | None:
        value = self.get(body, name, ctx, list)
        if value is None:
            return None
        return [hclvars.coerce(v, "string") for v in value]
