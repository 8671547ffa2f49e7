"""Where tools come from: the ``fleetmind.tools`` entry-point group and an optional plugin directory.

Built-in tools are listed in fleetmind's own ``pyproject.toml`` under ``[project.entry-points."fleetmind.tools"]``,
exactly as a third-party package lists its tools, so the two paths are one. An entry point may name a
:class:`~fleetmind.tools.base.Tool`, an iterable of them, or a function returning either. A plugin directory holds
plain ``*.py`` files; every module-level ``Tool`` in them (or a ``TOOLS`` list) is registered — for a person who
wants a tool without packaging it.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from fleetmind.tools.base import Tool
from fleetmind.tools.errors import ToolRegistrationError, UnknownToolError

__all__ = ["ENTRY_POINT_GROUP", "ToolRegistry", "discover", "load_entry_points", "load_plugin_dir"]

ENTRY_POINT_GROUP = "fleetmind.tools"
log = logging.getLogger(__name__)


def _tools_from(obj: Any, where: str) -> list[Tool]:
    if isinstance(obj, Tool):
        return [obj]
    if callable(obj) and not isinstance(obj, type):
        return _tools_from(obj(), where)
    if isinstance(obj, Iterable) and not isinstance(obj, str | bytes):
        found = [t for t in obj if isinstance(t, Tool)]
        if found:
            return found
    raise ToolRegistrationError(f"{where} does not provide a Tool (got {type(obj).__name__})")


def load_entry_points(group: str = ENTRY_POINT_GROUP) -> list[Tool]:
    """Every tool registered under ``group`` by any installed distribution."""
    tools: list[Tool] = []
    for ep in entry_points(group=group):
        try:
            obj = ep.load()
        except Exception as exc:
            raise ToolRegistrationError(f"entry point {ep.name} = {ep.value} failed to load: {exc}") from exc
        tools.extend(_tools_from(obj, f"entry point {ep.name} = {ep.value}"))
    return tools


def load_plugin_dir(folder: Path) -> list[Tool]:
    """Tools defined at module level in ``folder/*.py`` (files starting with ``_`` are skipped)."""
    if not folder.is_dir():
        raise ToolRegistrationError(f"plugin directory {folder} does not exist")
    tools: list[Tool] = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"fleetmind_tool_plugin_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ToolRegistrationError(f"cannot import plugin {path}")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ToolRegistrationError(f"plugin {path} failed to import: {exc}") from exc
        listed = getattr(module, "TOOLS", None)
        found = _tools_from(listed, str(path)) if listed is not None else []
        found += [v for v in vars(module).values() if isinstance(v, Tool) and v not in found]
        if not found:
            log.warning("plugin %s defines no Tool", path)
        tools.extend(found)
    return tools


class ToolRegistry:
    """Tools by name; a second tool with a taken name is an error, not a silent replacement."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.register(t)

    def register(self, tool: Tool) -> None:
        existing = self._tools.get(tool.name)
        if existing is not None and existing is not tool:
            raise ToolRegistrationError(f"two tools are named {tool.name!r}")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownToolError(f"no tool named {name!r}; known: {', '.join(sorted(self._tools))}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(sorted(self._tools.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return sorted(self._tools)


def discover(plugin_dir: Path | None = None, *, group: str = ENTRY_POINT_GROUP) -> ToolRegistry:
    """The built-in and installed tools (entry points), plus the plugin directory's."""
    registry = ToolRegistry(load_entry_points(group))
    if plugin_dir is not None:
        for t in load_plugin_dir(plugin_dir):
            registry.register(t)
    return registry
