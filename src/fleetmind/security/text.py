"""Text from the wire that cannot be written back out: lone UTF-16 surrogates and other unencodable strings.

JSON may carry ``"\ud800"``: Python's parser turns it into a ``str`` holding a lone surrogate, which every later
``.encode("utf-8")`` (the audit log, an event, a response) refuses. Such a value is rejected at the edge that
received it (400), never carried on: :func:`unencodable_path` finds the first one in a parsed JSON value, and
:func:`scrub` replaces them where a value must be kept whatever it holds (an event, a log line).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["scrub", "scrub_json", "unencodable_path"]


def _bad(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unencodable_path(value: Any, where: str = "") -> str | None:
    """The JSON path (``arguments.files["a"]``) of the first string, key included, that is not valid Unicode."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _bad(item):
                return path or "(top level)"
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str) and _bad(key):
                    return f"{path} (a key)" if path else "(a key)"
                stack.append((sub, f"{path}.{key}" if path else str(key)))
        elif isinstance(item, list | tuple):
            stack.extend((sub, f"{path}[{i}]") for i, sub in enumerate(item))
    return None


def scrub(text: str) -> str:
    """``text`` with every character UTF-8 cannot encode replaced by U+FFFD."""
    if not _bad(text):
        return text
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def scrub_json(value: Any) -> Any:
    """``value`` as plain JSON values (anything else as its ``str``) with every string passed through :func:`scrub`."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return json.loads(scrub(text)) if _bad(text) else json.loads(text)
