"""Evaluate the values python-hcl2 (v8) hands back for a Nomad job file: literals, templates, ``var.*``
expressions.

python-hcl2 keeps quoted strings with their quotes (``'"text"'``) and wraps bare expressions as
``"${expr}"``; this module turns both into plain Python values. Interpolations that use input variables or
functions (``${var.port}``, ``${basename(var.model)}``) are evaluated at load time; every other
interpolation (``${NOMAD_PORT_http}``, ``${attr.unique.hostname}``) is left in the string for the
orchestrator to fill in at run time, as Nomad does. Only the small expression language job files need is
supported; anything else raises :class:`HclEvalError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any


class HclEvalError(ValueError):
    """An expression or template could not be evaluated; the job loader adds file, line and field."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
      | (?P<op>==|!=|>=|<=|[<>?:])
      | (?P<punct>[.\[\](),-])
    )""",
    re.VERBOSE,
)
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
_USES_INPUTS = re.compile(r"\bvar\.|^\s*[A-Za-z_]\w*\s*\(")


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value)
    raise HclEvalError(f"cannot use {type(value).__name__} value {value!r} inside a string")


def _to_number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise HclEvalError(f"{value!r} is not a number")
    if isinstance(value, int | float):
        return value
    try:
        number = float(str(value).strip())
    except ValueError:
        raise HclEvalError(f"{value!r} is not a number") from None
    return int(number) if number.is_integer() else number


def _format(fmt: str, *args: Any) -> str:
    values = iter(args)
    return re.sub(r"%[sdvq%]", lambda m: "%" if m.group() == "%%" else _to_string(next(values)), fmt)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "basename": lambda p: os.path.basename(str(p).rstrip("/")),
    "dirname": lambda p: os.path.dirname(str(p).rstrip("/")) or ".",
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
    "trimspace": lambda s: str(s).strip(),
    "replace": lambda s, old, new: str(s).replace(str(old), str(new)),
    "tostring": _to_string,
    "tonumber": _to_number,
    "join": lambda sep, items: str(sep).join(_to_string(i) for i in items),
    "format": _format,
    "length": len,
    "concat": lambda *lists: [item for items in lists for item in items],
}
# Comparisons for conditionals such as ``var.rpc_workers > 0 ? var.python : var.llama_server``.
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    ">": lambda a, b: _to_number(a) > _to_number(b),
    ">=": lambda a, b: _to_number(a) >= _to_number(b),
    "<": lambda a, b: _to_number(a) < _to_number(b),
    "<=": lambda a, b: _to_number(a) <= _to_number(b),
}


def _matching_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing an interpolation whose body starts at ``start`` (quote/nesting aware)."""
    depth, i = 1, start
    while i < len(text):
        ch = text[i]
        if ch == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise HclEvalError(f"unclosed interpolation in {text!r}")


def _unescape_at(text: str, i: int) -> tuple[str, int]:
    """Decode the HCL escape sequence at ``text[i] == '\\'``; returns the character and the next index."""
    nxt = text[i + 1 : i + 2]
    if nxt in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[nxt], i + 2
    if nxt in ("u", "U"):
        width = 4 if nxt == "u" else 8
        digits = text[i + 2 : i + 2 + width]
        try:
            return chr(int(digits, 16)), i + 2 + width
        except ValueError:
            pass
    raise HclEvalError(f"bad escape sequence {text[i : i + 2]!r} in {text!r}")


class Evaluator:
    """Evaluates hcl2 values against resolved input variables (``var.*``)."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.variables = dict(variables)

    def value(self, raw: Any) -> Any:
        """One attribute value as python-hcl2 serialised it → a plain Python value."""
        if raw is None or isinstance(raw, bool | int | float):
            return raw
        if isinstance(raw, list):
            return [self.value(item) for item in raw]
        if isinstance(raw, dict):
            return {self.key(k): self.value(v) for k, v in raw.items() if not k.startswith("__")}
        if not isinstance(raw, str):
            raise HclEvalError(f"unexpected value {raw!r}")
        if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
            return self.template(raw[1:-1])
        if raw.startswith("${") and raw.endswith("}"):
            return self.expression(raw[2:-1])
        return self.expression(raw)

    @staticmethod
    def key(raw: str) -> str:
        """Object keys and block labels come quoted or bare; both mean the same name."""
        if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
            return raw[1:-1]
        return raw

    def template(self, raw: str) -> Any:
        """A quoted string's body (escapes still raw) → its value; runtime interpolations stay as written."""
        parts: list[Any] = []
        literal: list[str] = []
        i = 0
        while i < len(raw):
            if raw.startswith(("$${", "%%{"), i):
                literal.append(raw[i + 1 : i + 3])
                i += 3
            elif raw.startswith("${", i):
                end = _matching_brace(raw, i + 2)
                body = raw[i + 2 : end].strip().strip("~").strip()
                if _USES_INPUTS.search(body):
                    if literal:
                        parts.append("".join(literal))
                        literal = []
                    parts.append(self.expression(body))
                else:
                    literal.append("${" + body + "}")
                i = end + 1
            elif raw[i] == "\\":
                ch, i = _unescape_at(raw, i)
                literal.append(ch)
            else:
                literal.append(raw[i])
                i += 1
        if literal:
            parts.append("".join(literal))
        if len(parts) == 1 and not isinstance(parts[0], str):
            return parts[0]  # "${var.port}" keeps the number, as HCL does for a lone interpolation
        return "".join(_to_string(p) for p in parts)

    def expression(self, text: str) -> Any:
        tokens = self._tokenize(text)
        value, pos = self._conditional(tokens, 0, text)
        if pos != len(tokens):
            raise HclEvalError(f"unsupported expression {text!r} (near {tokens[pos][1]!r})")
        return value

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if not match or match.end() == pos:
                raise HclEvalError(f"unsupported expression {text!r} (at {text[pos:].strip()[:20]!r})")
            kind = match.lastgroup or ""
            tokens.append((kind, match.group(kind)))
            pos = match.end()
        return tokens

    def _conditional(self, tokens: list[tuple[str, str]], pos: int, text: str) -> tuple[Any, int]:
        """``a OP b ? x : y`` (both branches are evaluated; only their values are kept or dropped)."""
        value, pos = self._postfix(tokens, pos, text)
        if pos < len(tokens) and tokens[pos][1] in _COMPARE:
            op = tokens[pos][1]
            right, pos = self._postfix(tokens, pos + 1, text)
            try:
                value = _COMPARE[op](value, right)
            except HclEvalError as exc:
                raise HclEvalError(f"{op} in {text!r}: {exc}") from None
        if pos < len(tokens) and tokens[pos][1] == "?":
            if not isinstance(value, bool):
                raise HclEvalError(f"the condition in {text!r} is not a bool")
            yes, pos = self._conditional(tokens, pos + 1, text)
            pos = self._expect(tokens, pos, ":", text)
            no, pos = self._conditional(tokens, pos, text)
            value = yes if value else no
        return value, pos

    def _postfix(self, tokens: list[tuple[str, str]], pos: int, text: str) -> tuple[Any, int]:
        value, pos = self._primary(tokens, pos, text)
        while pos < len(tokens) and tokens[pos][1] in (".", "["):
            if tokens[pos][1] == ".":
                if pos + 1 >= len(tokens) or tokens[pos + 1][0] not in ("name", "number"):
                    raise HclEvalError(f"expected an attribute name after '.' in {text!r}")
                key: Any = tokens[pos + 1][1]
                pos += 2
            else:
                key, pos = self._postfix(tokens, pos + 1, text)
                pos = self._expect(tokens, pos, "]", text)
            value = self._index(value, key, text)
        return value, pos

    def _index(self, value: Any, key: Any, text: str) -> Any:
        if value is self.variables and key not in self.variables:
            raise HclEvalError(f"{text!r} uses undeclared variable {key!r}: add a variable block for it")
        try:
            if isinstance(value, list):
                return value[int(key)]
            return value[key]
        except (KeyError, IndexError, TypeError, ValueError):
            raise HclEvalError(f"{text!r}: no element {key!r}") from None

    @staticmethod
    def _expect(tokens: list[tuple[str, str]], pos: int, want: str, text: str) -> int:
        if pos >= len(tokens) or tokens[pos][1] != want:
            raise HclEvalError(f"expected {want!r} in {text!r}")
        return pos + 1

    def _primary(self, tokens: list[tuple[str, str]], pos: int, text: str) -> tuple[Any, int]:
        if pos >= len(tokens):
            raise HclEvalError(f"incomplete expression {text!r}")
        kind, tok = tokens[pos]
        if kind == "number":
            return _to_number(tok), pos + 1
        if kind == "string":
            return self.template(tok[1:-1]), pos + 1
        if tok == "-" and pos + 1 < len(tokens) and tokens[pos + 1][0] == "number":
            return -_to_number(tokens[pos + 1][1]), pos + 2
        if tok in ("[", "("):
            closing = "]" if tok == "[" else ")"
            items, pos = self._sequence(tokens, pos + 1, closing, text)
            if tok == "(":
                if len(items) != 1:
                    raise HclEvalError(f"unsupported expression {text!r}")
                return items[0], pos
            return items, pos
        if kind == "name":
            if tok in ("true", "false"):
                return tok == "true", pos + 1
            if tok == "null":
                return None, pos + 1
            if tok == "var":
                return self.variables, pos + 1
            if pos + 1 < len(tokens) and tokens[pos + 1][1] == "(":
                func = FUNCTIONS.get(tok)
                if func is None:
                    raise HclEvalError(f"function {tok}() is not supported (supported: {', '.join(sorted(FUNCTIONS))})")
                args, pos = self._sequence(tokens, pos + 2, ")", text)
                try:
                    return func(*args), pos
                except (TypeError, ValueError, StopIteration) as exc:
                    raise HclEvalError(f"{tok}() failed in {text!r}: {exc}") from None
            raise HclEvalError(f"unknown name {tok!r} in {text!r} (only var.* can be used outside strings)")
        raise HclEvalError(f"unsupported expression {text!r}")

    def _sequence(self, tokens: list[tuple[str, str]], pos: int, closing: str, text: str) -> tuple[list[Any], int]:
        items: list[Any] = []
        while pos < len(tokens) and tokens[pos][1] != closing:
            item, pos = self._conditional(tokens, pos, text)
            items.append(item)
            if pos < len(tokens) and tokens[pos][1] == ",":
                pos += 1
        return items, self._expect(tokens, pos, closing, text)
