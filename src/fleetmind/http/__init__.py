"""The one HTTP kit of fleetmind's servers: what every app installs with one call, :func:`install`.

``guard`` refuses state-changing requests and WebSocket handshakes with a foreign ``Host`` (DNS rebinding) or
``Origin`` (another web page) and caps request bodies; ``redact`` keeps query strings and secrets out of every
log. The gateway, Mission Control, provisioning and the embedded Nomad/Consul APIs all call
``install(app, ...)``. Refusals use the error envelope of :mod:`fleetmind.http.envelope`.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.applications import Starlette

from fleetmind.http.guard import DEFAULT_MAX_BODY, LOOPBACK_HOSTS, Guard
from fleetmind.http.redact import RedactFilter, install_redaction, redact

__all__ = ["DEFAULT_MAX_BODY", "LOOPBACK_HOSTS", "Guard", "RedactFilter", "install", "install_redaction", "redact"]


def install(
    app: Starlette,
    *,
    allowed_hosts: Iterable[str] | None = None,
    max_body: int | None = None,
    check_reads: bool = False,
) -> None:
    """Put the guard in front of ``app`` (outermost) and redact this process's logs.

    Host names allowed besides the loopback names and the server's own address are the shared settings'
    (``FLEETMIND_ALLOWED_HOSTS``; ``"*"`` allows any) and ``allowed_hosts``; ``max_body`` caps request bodies in
    bytes (default ``FLEETMIND_MAX_BODY_BYTES``, 1 MiB). ``check_reads`` checks Host and Origin on every request,
    not only on state-changing ones.
    """
    from fleetmind.config import get_settings

    settings = get_settings()
    hosts = [*settings.allowed_hosts, *(allowed_hosts or ())]
    cap = settings.max_body_bytes if max_body is None else max_body
    if cap < 1:
        raise ValueError(f"max_body must be at least 1 byte, not {cap}")
    app.add_middleware(Guard, allowed_hosts=hosts, max_body=cap, check_reads=check_reads)
    install_redaction()
