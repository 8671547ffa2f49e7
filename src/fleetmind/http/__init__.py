"""The one HTTP kit of fleetmind's servers: what every app installs with one call, :func:`install`.

``guard`` refuses state-changing requests and WebSocket handshakes with a foreign ``Host`` (DNS rebinding) or
``Origin`` (another web page) and caps request bodies; ``envelope`` answers every failure in the one error envelope
(``ServiceError`` is every app's error base); ``bodies`` reads and validates bodies with one validation mapping;
``auth`` is the one key check and the service credential; ``throttle`` slows down key guessing; ``redact`` keeps
query strings and secrets out of every log. The gateway, the agent process (with Mission Control) and provisioning
call ``install(app, ..., validation_status=..., throttle=True)``; the embedded Nomad/Consul APIs, which answer in
Nomad's and Consul's own shapes, take only the guard.
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
    validation_status: int | None = None,
    throttle: bool = False,
) -> None:
    """Put the guard in front of ``app`` and redact this process's logs; with ``validation_status`` also answer
    every failure in the one envelope (:func:`~fleetmind.http.envelope.install_errors`; a request that fails
    validation gets that status, 422, or 400 in the OpenAI gateway), and with ``throttle`` put the failed-auth
    throttle (:mod:`fleetmind.http.throttle`) in front of everything.

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
    if validation_status is not None:
        from fastapi import FastAPI

        from fleetmind.http.bodies import invalid_body
        from fleetmind.http.envelope import install_errors

        assert isinstance(app, FastAPI)
        status = validation_status
        install_errors(app, on_validation=lambda exc: invalid_body(exc.errors(), status=status))
    app.add_middleware(Guard, allowed_hosts=hosts, max_body=cap, check_reads=check_reads)
    if throttle:
        from fleetmind.http.throttle import AuthThrottleMiddleware

        app.add_middleware(AuthThrottleMiddleware)  # repeated 401s from one address: 429 for a while
    install_redaction()
