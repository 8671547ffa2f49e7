"""Go-style durations ("15s", "1h30m", "500ms") as Nomad job files and Consul checks write them.

Nomad's API carries durations as integer nanoseconds; Consul's agent API takes the strings. Both directions
live here so the job loader, the embedded registry and the orchestrator agree on one parser.
"""

from __future__ import annotations

import re

NS_PER = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(value: str | int | float) -> int:
    """``"1m30s"`` → 90_000_000_000 ns. Integers are taken as nanoseconds already (the API form)."""
    if isinstance(value, bool):
        raise ValueError(f"duration {value!r} is a bool, not a duration")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = value.strip()
    sign = 1
    if text[:1] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * NS_PER[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration (write it like 15s, 500ms, 5m or 1h30m)")
    return sign * round(total)


def seconds(ns: int) -> float:
    return ns / 1e9


def format_duration(ns: int) -> str:
    """Nanoseconds → Go's ``time.Duration.String()`` form ("30m0s", "15s", "500ms") for messages."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < NS_PER["s"]:
        for unit in ("ms", "us", "ns"):
            if ns >= NS_PER[unit]:
                return f"{sign}{ns / NS_PER[unit]:g}{unit}"
    hours, rest = divmod(ns, NS_PER["h"])
    minutes, rest = divmod(rest, NS_PER["m"])
    secs = f"{rest / NS_PER['s']:g}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return f"{sign}{secs}"
