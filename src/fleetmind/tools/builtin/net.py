"""Network tools limited to what the configuration allows: ``http_get`` and ``port_check`` reach only allowlisted
hosts (checked before any connection, and again on every redirect), ``dns_lookup`` answers from ``/etc/hosts`` and
loopback names only, never from a resolver on the network."""

from __future__ import annotations

import ipaddress
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from fleetmind.tools.base import ToolCall, ToolContext, tool
from fleetmind.tools.errors import ToolArgumentsError, ToolExecutionError, ToolRefusedError

MAX_BODY = 256 * 1024
MAX_REDIRECTS = 5


def host_allowed(ctx: ToolContext, host: str) -> bool:
    """Exact host names/addresses, or ``*.example.org`` for its subdomains."""
    host = host.lower().rstrip(".")
    for entry in ctx.http_allowlist:
        entry = entry.lower().rstrip(".")
        if host == entry or (entry.startswith("*.") and host.endswith(entry[1:])):
            return True
    return False


def _check_url(ctx: ToolContext, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolArgumentsError(f"{url!r} is not an http(s) URL with a host")
    if not host_allowed(ctx, parts.hostname):
        raise ToolRefusedError(f"host {parts.hostname!r} is not on the allowlist ({', '.join(ctx.http_allowlist)})")
    return url


@tool(
    "http_get",
    "Fetch a URL with GET from an allowlisted host; returns status, content type and text.",
    {
        "type": "object",
        "properties": {
            "url": {"type": "string", "maxLength": 2048},
            "max_bytes": {"type": "integer", "minimum": 1, "maximum": MAX_BODY},
        },
        "required": ["url"],
    },
    timeout_s=30.0,
)
async def http_get(call: ToolCall) -> dict[str, Any]:
    url = _check_url(call.context, call.args["url"])
    limit = int(call.args.get("max_bytes", MAX_BODY))
    # trust_env=False: no proxy from the environment may carry the request somewhere else
    async with httpx.AsyncClient(timeout=15.0, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with client.stream("GET", url, headers={"User-Agent": "fleetmind-tools"}) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        url = _check_url(call.context, urljoin(url, resp.headers["location"]))
                        continue
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > limit:
                            break
                    return {
                        "url": url,
                        "status": resp.status_code,
                        "content_type": resp.headers.get("content-type", ""),
                        "text": bytes(body[:limit]).decode(resp.encoding or "utf-8", errors="replace"),
                        "truncated": len(body) > limit,
                    }
            except httpx.HTTPError as exc:
                raise ToolExecutionError(f"GET {url} failed: {type(exc).__name__}: {exc}") from None
    raise ToolExecutionError(f"more than {MAX_REDIRECTS} redirects")


@tool(
    "port_check",
    "Check whether a TCP port on an allowlisted host accepts connections.",
    {
        "type": "object",
        "properties": {
            "host": {"type": "string", "maxLength": 253},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
        },
        "required": ["host", "port"],
    },
    timeout_s=15.0,
)
def port_check(call: ToolCall) -> dict[str, Any]:
    host, port = call.args["host"], int(call.args["port"])
    if not host_allowed(call.context, host):
        raise ToolRefusedError(f"host {host!r} is not on the allowlist")
    t0 = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=float(call.args.get("timeout_s", 3))):
            return {"host": host, "port": port, "open": True, "ms": round((time.perf_counter() - t0) * 1000, 2)}
    except OSError as exc:
        return {"host": host, "port": port, "open": False, "error": exc.strerror or str(exc)}


def hosts_file_lookup(name: str, hosts_file: Path = Path("/etc/hosts")) -> list[str]:
    name = name.lower().rstrip(".")
    found: list[str] = []
    if hosts_file.exists():
        for line in hosts_file.read_text(errors="replace").splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2 and name in (f.lower() for f in fields[1:]) and fields[0] not in found:
                found.append(fields[0])
    if not found and (name == "localhost" or name.endswith(".localhost")):
        found = ["127.0.0.1", "::1"]
    return found


@tool(
    "dns_lookup",
    "Resolve a host name from /etc/hosts and loopback names (no network resolver), or reverse an address the same way.",
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 253}}, "required": ["name"]},
    timeout_s=5.0,
)
def dns_lookup(call: ToolCall) -> dict[str, Any]:
    name = call.args["name"].strip()
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return {"name": name, "addresses": hosts_file_lookup(name), "source": "/etc/hosts"}
    names = []
    for line in Path("/etc/hosts").read_text(errors="replace").splitlines():
        fields = line.split("#", 1)[0].split()
        if fields and fields[0] == str(address):
            names += fields[1:]
    return {"name": name, "names": names, "loopback": address.is_loopback, "source": "/etc/hosts"}
