"""Health-check probes the embedded registry runs, with Consul's semantics.

An HTTP check passes on a 2xx answer, warns on 429 and is critical on anything else or on no answer within
its timeout; a TCP check passes when a connection opens. Each check runs once as soon as it is registered
and then every interval, like a Consul agent's check runner; but until its first pass a check is probed
every STARTUP_PROBE_S (at most its interval), so a starting stack is seen healthy as soon as it is, not a
whole interval later. Those extra probes report only a pass: failures are still reported once per interval,
so check_restart counts them at Consul's pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

PASSING, WARNING, CRITICAL = "passing", "warning", "critical"
STARTUP_PROBE_S = 0.25


@dataclass
class ProbeResult:
    status: str
    output: str


async def probe_http(client: httpx.AsyncClient, url: str, limit_s: float, method: str = "GET") -> ProbeResult:
    try:
        response = await client.request(method, url, timeout=limit_s)
    except httpx.HTTPError as exc:
        return ProbeResult(CRITICAL, f"{method} {url}: {type(exc).__name__}: {exc}")
    text = f"HTTP {method} {url}: {response.status_code} {response.reason_phrase} Output: {response.text[:200]}"
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
    passed_once = False
    last_report = float("-inf")
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
        while True:
            if kind == "http":
                result = await probe_http(client, target, limit_s, method)
            else:
                host, _, port = target.rpartition(":")
                result = await probe_tcp(host.strip("[]"), int(port), limit_s)
            now = time.monotonic()
            if passed_once or result.status == PASSING or now - last_report >= interval:
                report(result)
                last_report = now
            passed_once = passed_once or result.status == PASSING
            await asyncio.sleep(interval if passed_once else min(interval, STARTUP_PROBE_S))
