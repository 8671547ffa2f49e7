"""Enrolment tokens: what a new node shows to call home, made by an admin, kept only as SHA-256 hashes.

A token is shown once, when it is made (``fleetmind provision token create``); the store keeps its hash (the
same :func:`fleetmind.security.hash_key` the API keys use), its role (the inventory group a node enrolled with
it joins -- a node cannot choose its own role), an optional expiry and an optional number of uses (1:
single-use). A token is consumed in the same database transaction that accepts the call-home, so two nodes
racing with one single-use token cannot both get in."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

TOKEN_PREFIX = "fmp-"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def parse_duration(text: str) -> int | None:
    """``"90"``, ``"15m"``, ``"24h"``, ``"7d"`` -> seconds; ``"0"`` or ``"never"`` -> ``None`` (no expiry)."""
    if text.strip().lower() in ("never", "none", "0"):
        return None
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 3600, 15m, 24h, 7d or never)")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class EnrolmentToken:
    id: str
    name: str
    sha256: str
    role: str
    created_at: float
    expires_at: float | None
    max_uses: int | None
    uses: int
    revoked: bool

    def problem(self, now: float | None = None) -> str | None:
        """Why this token cannot be used now, or ``None`` when it can."""
        now = time.time() if now is None else now
        if self.revoked:
            return "enrolment token revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "enrolment token expired"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "enrolment token already used"
        return None
