"""The shape of a service registration the embedded registry accepts, checked at the Consul API's edge.

Consul matches request keys case-insensitively; every field the registry reads is typed here (name, ID, address,
port, tags, meta, and each check's kind, target, interval and timeout), so a malformed registration is a
:class:`BadRequest` (a 400) naming the field, never a crash later.
"""

from __future__ import annotations

from typing import Any

import httpx

from fleetmind.cluster.durations import parse_duration
from fleetmind.cluster.embedded.registry import CheckDef

MAX_CHECKS = 32
METHODS = ("GET", "HEAD", "POST", "PUT", "OPTIONS")  # the HTTP methods a check may use


class BadRequest(ValueError):
    pass


def _lower(obj: dict[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in obj.items()}


def _seconds(value: Any, what: str, *, least: float) -> float:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise BadRequest(f'{what} must be a duration such as "10s"')
    try:
        seconds = parse_duration(value) / 1e9
    except ValueError as exc:
        raise BadRequest(f"{what}: {exc}") from None
    if not least <= seconds <= 86400:
        raise BadRequest(f"{what} must be between {least:g}s and 24h")
    return seconds


def _text(body: dict[str, Any], key: str, default: str = "") -> str:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value


def check_def(raw: Any, service_name: str, default_address: str, port: int) -> CheckDef:
    if not isinstance(raw, dict):
        raise BadRequest("a check must be an object")
    c = _lower(raw)
    interval = _seconds(c.get("interval") or "10s", "Interval", least=0.01)
    timeout = _seconds(c.get("timeout") or "10s", "Timeout", least=0.001)
    for key in ("http", "tcp", "method", "name", "checkid", "id"):
        _text(c, key)
    _check_target(c)
    name = str(c.get("name") or f"Service '{service_name}' check")
    check_id = c.get("checkid") or c.get("id") or None
    if c.get("http"):
        return CheckDef(
            name,
            "http",
            str(c["http"]),
            interval,
            timeout,
            str(c.get("method") or "GET"),
            check_id,
            {"HTTP": c["http"], "Interval": c.get("interval"), "Timeout": c.get("timeout")},
        )
    if c.get("tcp"):
        return CheckDef(
            name,
            "tcp",
            str(c["tcp"]),
            interval,
            timeout,
            "GET",
            check_id,
            {"TCP": c["tcp"], "Interval": c.get("interval"), "Timeout": c.get("timeout")},
        )
    kinds = ", ".join(sorted(k for k in c if k in ("ttl", "args", "script", "grpc", "docker_container_id")))
    raise BadRequest(f"check type {kinds or '(none)'} is not supported by the embedded registry (use HTTP or TCP)")


def _check_target(c: dict[str, Any]) -> None:
    """An HTTP check needs an http(s) URL and a plain method, a TCP check ``host:port``."""
    if c.get("http"):
        try:
            url = httpx.URL(c["http"])
        except (httpx.InvalidURL, ValueError) as exc:
            raise BadRequest(f"HTTP check URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise BadRequest("HTTP check URL must be an http:// or https:// URL")
        if (c.get("method") or "GET").upper() not in METHODS:
            raise BadRequest(f"check Method must be one of {', '.join(METHODS)}")
    elif c.get("tcp"):
        host, _, port = str(c["tcp"]).rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise BadRequest("TCP check must be host:port")


def service_fields(raw: Any) -> dict[str, Any]:
    """A registration body's fields, typed; BadRequest names the first one that is wrong."""
    if not isinstance(raw, dict):
        raise BadRequest("request decode failed: the body must be a JSON object")
    body = _lower(raw)
    name = _text(body, "name")
    if not name:
        raise BadRequest("Missing service name")
    port = body.get("port") or 0
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise BadRequest("Port must be an integer between 0 and 65535")
    tags, meta = body.get("tags") or [], body.get("meta") or {}
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise BadRequest("Tags must be a list of strings")
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise BadRequest("Meta must be an object of strings")
    checks = body.get("checks") or []
    if not isinstance(checks, list):
        raise BadRequest("Checks must be a list")
    checks = checks + ([body["check"]] if body.get("check") else [])
    if len(checks) > MAX_CHECKS:
        raise BadRequest(f"at most {MAX_CHECKS} checks per service")
    return {
        "name": name,
        "id": _text(body, "id") or None,
        "address": _text(body, "address"),
        "port": port,
        "tags": tags,
        "meta": meta,
        "checks": checks,
    }
