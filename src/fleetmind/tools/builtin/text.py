"""Tools that only compute: ``calculator`` (a safe AST evaluator, never ``eval``), ``json_query``, ``text_stats``,
``hash``, ``base64`` and ``text_diff``. They touch no files and no network, so they are all ``safe``."""

from __future__ import annotations

import ast
import base64 as b64
import binascii
import difflib
import hashlib
import json
import math
import operator
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from fleetmind.tools.base import ToolCall, tool
from fleetmind.tools.errors import ToolArgumentsError, ToolExecutionError

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_NAMES = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}
_FUNCS: dict[str, Callable[..., Any]] = {
    **{
        n: getattr(math, n)
        for n in (
            "sqrt",
            "sin",
            "cos",
            "tan",
            "asin",
            "acos",
            "atan",
            "atan2",
            "exp",
            "log",
            "log10",
            "log2",
            "floor",
            "ceil",
            "hypot",
            "degrees",
            "radians",
            "gcd",
        )
    },
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "factorial": lambda n: math.factorial(_bounded(n, 1000, "factorial")),
}


def _bounded(n: Any, limit: int, what: str) -> int:
    if not isinstance(n, int) or abs(n) > limit:
        raise ToolExecutionError(f"{what} is limited to integers up to {limit}")
    return n


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 10_000 or (abs(left) > 2**64 and abs(right) > 1)):
            raise ToolExecutionError("exponent too large")  # 10**10**10 would hang the process
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and not node.keywords:
        return _FUNCS[node.func.id](*[_eval(a) for a in node.args])
    raise ToolArgumentsError(f"not allowed in an expression: {ast.dump(node)[:80]}")


def calculate(expression: str) -> int | float:
    """Evaluate arithmetic with math functions; anything else is refused."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ToolArgumentsError(f"not a valid expression: {exc.msg}") from None
    try:
        value = _eval(tree)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError) as exc:
        raise ToolExecutionError(f"cannot evaluate {expression!r}: {exc}") from None
    if not isinstance(value, int | float):
        raise ToolExecutionError(f"{expression!r} does not give a number")
    return value


@tool(
    "calculator",
    "Evaluate an arithmetic expression (+ - * / // % **, parentheses, pi, e, sqrt, log, sin, ... ).",
    {
        "type": "object",
        "properties": {"expression": {"type": "string", "minLength": 1, "maxLength": 500}},
        "required": ["expression"],
    },
    timeout_s=5.0,
)
def calculator(call: ToolCall) -> dict[str, Any]:
    return {"expression": call.args["expression"], "result": calculate(call.args["expression"])}


_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][\w-]*)|\[(\*|-?\d+)\]|\[\"([^\"]*)\"\]")


def query(data: Any, path: str) -> Any:
    """``a.b[0].c``, ``items[*].name``, ``["odd key"]``; ``[*]`` maps the rest of the path over a list."""
    tokens: list[str | int] = []
    pos = 0
    path = path.strip().removeprefix("$")
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if not m or m.end() == pos:
            raise ToolArgumentsError(f"cannot parse the path at {path[pos:]!r}")
        name, index, quoted = m.groups()
        tokens.append(
            name if name is not None else quoted if quoted is not None else ("*" if index == "*" else int(index))
        )
        pos = m.end()

    def walk(value: Any, rest: list[str | int]) -> Any:
        if not rest:
            return value
        head, tail = rest[0], rest[1:]
        if head == "*":
            if not isinstance(value, list):
                raise ToolExecutionError("[*] applied to something that is not a list")
            return [walk(v, tail) for v in value]
        try:
            return walk(value[head], tail)
        except (KeyError, IndexError, TypeError):
            raise ToolExecutionError(f"nothing at {head!r}") from None

    return walk(data, tokens)


@tool(
    "json_query",
    "Pick values out of JSON with a path like a.b[0].c or items[*].name.",
    {
        "type": "object",
        "properties": {
            "data": {"description": "JSON value, or a string holding JSON."},
            "path": {"type": "string", "maxLength": 500},
        },
        "required": ["data", "path"],
    },
    timeout_s=5.0,
)
def json_query(call: ToolCall) -> dict[str, Any]:
    data = call.args["data"]
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise ToolArgumentsError(f"data is a string but not JSON: {exc}") from None
    return {"path": call.args["path"], "result": query(data, call.args["path"])}


@tool(
    "text_stats",
    "Count characters, words, lines and sentences of a text and list its most common words.",
    {
        "type": "object",
        "properties": {
            "text": {"type": "string", "maxLength": 1_000_000},
            "top": {"type": "integer", "minimum": 0, "maximum": 100, "default": 5},
        },
        "required": ["text"],
    },
    timeout_s=10.0,
)
def text_stats(call: ToolCall) -> dict[str, Any]:
    text: str = call.args["text"]
    words = re.findall(r"[\w'-]+", text.lower())
    return {
        "characters": len(text),
        "words": len(words),
        "lines": len(text.splitlines()),
        "sentences": len([s for s in re.split(r"[.!?]+(?:\s|$)", text) if s.strip()]),
        "top_words": Counter(words).most_common(int(call.args.get("top", 5))),
    }


@tool(
    "hash",
    "Hash a text with sha256 (default), sha1, sha512, md5 or blake2b; hex digest.",
    {
        "type": "object",
        "properties": {
            "text": {"type": "string", "maxLength": 10_000_000},
            "algorithm": {"enum": ["sha256", "sha1", "sha512", "md5", "blake2b"]},
        },
        "required": ["text"],
    },
    timeout_s=10.0,
)
def hash_(call: ToolCall) -> dict[str, Any]:
    algorithm = call.args.get("algorithm", "sha256")
    digest = hashlib.new(algorithm, call.args["text"].encode()).hexdigest()
    return {"algorithm": algorithm, "hex": digest}


@tool(
    "base64",
    "Encode a text to base64 or decode base64 to text (UTF-8).",
    {
        "type": "object",
        "properties": {"mode": {"enum": ["encode", "decode"]}, "text": {"type": "string", "maxLength": 10_000_000}},
        "required": ["mode", "text"],
    },
    timeout_s=10.0,
)
def base64_(call: ToolCall) -> dict[str, Any]:
    text = call.args["text"]
    if call.args["mode"] == "encode":
        return {"result": b64.b64encode(text.encode()).decode()}
    try:
        return {"result": b64.b64decode(text, validate=True).decode()}
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ToolExecutionError(f"not base64 of UTF-8 text: {exc}") from None


@tool(
    "text_diff",
    "Show a unified diff between two texts.",
    {
        "type": "object",
        "properties": {
            "before": {"type": "string", "maxLength": 1_000_000},
            "after": {"type": "string", "maxLength": 1_000_000},
            "context": {"type": "integer", "minimum": 0, "maximum": 20, "default": 3},
        },
        "required": ["before", "after"],
    },
    timeout_s=10.0,
)
def text_diff(call: ToolCall) -> dict[str, Any]:
    lines = difflib.unified_diff(
        call.args["before"].splitlines(keepends=True),
        call.args["after"].splitlines(keepends=True),
        "before",
        "after",
        n=int(call.args.get("context", 3)),
    )
    diff = "".join(lines)
    return {"diff": diff, "changed": bool(diff)}
