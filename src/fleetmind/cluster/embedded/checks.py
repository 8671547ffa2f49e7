"""Health-check probes the embedded registry runs, with Consul's semantics.

An HTTP check passes on a 2xx answer, warns on 429 and is critical on anything else or on no answer within
its timeout; a TCP check passes when a connection opens. Each check runs once as soon as it is registered
and then every interval, like a Consul agent's check runner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import httpx

PASSING, WARNING, CRITICAL = "passing", "warning", "critical"


@dataclass
class ProbeResult:
    status: str
    output: str


async def probe_http(client: httpx.AsyncClient, url: str, limit_s: float, method: str = "GET") -> ProbeResult:
    try:
        response = await client.request(method, url, timeout=limit_s)
    except httpx.HTTPError as exc:
        return ProbeResult(CRITICAL, f"{method} {url}: {type(exc).__name__}: {exc}")
    text = (
        f"HTTP {method} {url}: {response.status_code} {response.reason_phrase} Output: {response.text[:200]}"
    )
    if 200 <= response.status_code < 300:
        return ProbeResult(PASSING, text)
    if response.status_code == 429:
        return ProbeResult(WARNING, text)
    return ProbeResult(CRITICAL, text)


async def probe_tcp(host: str, port: int, limit_s: float) -> ProbeResult:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), limit_s)
    except (OSError, TimeoutError) as exc:
        return ProbeResult(CRITICAL, f"TCP connect {host}:{port}: {exc or type(exc).__name__}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult(PASSING, f"TCP connect {host}:{port}: Success")


async def run_check(
    *,
    kind: str,
    target: str,
    interval: float,
    limit_s: float,
    report: Callable[[ProbeResult], None],
    method: str = "GET",
) -> None:
    """Probe ``target`` now and then every ``interval`` seconds until cancelled, reporting each result."""
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
        while True:
            if kind == "http":
                result = await probe_http(client, target, limit_s, method)
            else:
                host, _, port = target.rpartition(":")
                result = await probe_tcp(host.strip("[]"), int(port), limit_s)
            report(result)
            await asyncio.sleep(interval)
