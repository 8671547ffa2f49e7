"""The service credential: how the stack's own services prove who they are to each other, without a caller's key.

One secret per stack, made at first start (:func:`ensure_secret`, ``<state dir>/service.secret``, mode 0600) and
given to the jobs through the environment (``FLEETMIND_SERVICE_SECRET``; the expert llama-servers take it as
``LLAMA_API_KEY``, which is their ``--api-key``). Its three uses:

- the gateway calls the agent with it (header :data:`SERVICE_HEADER`) and names its caller in
  :data:`CALLER_ID_HEADER` / :data:`CALLER_SCOPE_HEADER`; the caller's own key never leaves the gateway;
- every client of an expert (the agent's expert client, the embedder, the vision call, the tools) sends it as
  ``Authorization: Bearer``, and the experts refuse a call without it;
- a registration in the registry proves it was made by someone holding the secret: its meta
  :data:`PROOF_META` holds :func:`proof` (an HMAC of the service's name and port). The gateway and the agent only
  call instances whose proof checks out (:func:`proven`), so a service a local process registers under a known
  name never receives a request, nor the secret.

Processes find the secret with :func:`load_secret`: the environment first, else the file in the state dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from fleetmind.stack_settings import SERVICE_SECRET_FILE

SECRET_FILE = SERVICE_SECRET_FILE
SECRET_ENV = "FLEETMIND_SERVICE_SECRET"
PROOF_META = "fleetmind_proof"
SERVICE_HEADER = "X-Fleetmind-Service"
CALLER_ID_HEADER = "X-Fleetmind-Caller-Id"
CALLER_SCOPE_HEADER = "X-Fleetmind-Caller-Scope"
log = logging.getLogger(__name__)


class Registration(Protocol):
    """What :func:`proven` reads of a registry entry (:class:`~fleetmind.cluster.client.ServiceInstance`)."""

    @property
    def name(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def meta(self) -> dict[str, str]: ...


def secret_path(state_dir: Path) -> Path:
    return state_dir / SECRET_FILE


def ensure_secret(state_dir: Path) -> str:
    """The stack's secret, made now (0600, never replaced) if the state dir has none yet."""
    path = secret_path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # written whole under a temporary name, then linked into place: link fails if another process got there
        # first, so two processes starting at once agree on one secret and neither reads a half-written file
        tmp = path.with_name(f".{SECRET_FILE}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    secret = path.read_text(encoding="ascii").strip()
    if not secret:
        raise ValueError(f"the service secret {path} is empty: delete it and start again")
    return secret


def load_secret(state_dir: Path | None = None) -> str | None:
    """``FLEETMIND_SERVICE_SECRET``, else the file in ``state_dir`` (default: the settings'), else None."""
    value = os.environ.get(SECRET_ENV, "").strip()
    if value:
        return value
    if state_dir is None:
        from fleetmind.config import get_settings

        state_dir = get_settings().state_dir
    try:
        return secret_path(state_dir).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def service_secret(state_dir: Path) -> str:
    """What a service that may start first uses: ``FLEETMIND_SERVICE_SECRET``, else :func:`ensure_secret`."""
    return os.environ.get(SECRET_ENV, "").strip() or ensure_secret(state_dir)


class SecretSource:
    """The secret as a client that may start before it exists finds it: given, or read when first needed."""

    def __init__(self, value: str | None = None, *, state_dir: Path | None = None) -> None:
        self._value = value
        self._state_dir = state_dir

    def get(self) -> str | None:
        if self._value is None:
            self._value = load_secret(self._state_dir)
        return self._value


def same(secret: str | None, offered: str | None) -> bool:
    """Whether ``offered`` is the secret, compared in constant time; never True without a secret."""
    if not secret or not offered:
        return False
    return hmac.compare_digest(secret.encode("utf-8", "replace"), offered.encode("utf-8", "replace"))


def proof(secret: str, name: str, port: int) -> str:
    """The registration proof of service ``name`` on ``port``: bound to the port, so a copy of it registered for
    another instance (another port) does not check out."""
    message = f"fleetmind-service:{name}:{int(port)}".encode()
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def proven(secret: str | None, instance: Registration) -> bool:
    """Whether ``instance`` carries the proof of ``secret``; without a secret nothing is proven."""
    if not secret:
        return False
    offered = instance.meta.get(PROOF_META, "")
    return hmac.compare_digest(proof(secret, instance.name, instance.port), offered)


R = TypeVar("R", bound=Registration)


def only_proven(secret: str | None, instances: Sequence[R]) -> list[R]:
    """The instances that carry the secret's proof; the others are logged (once per lookup) and left out."""
    kept = [i for i in instances if proven(secret, i)]
    if len(kept) < len(instances):
        names = sorted({i.name for i in instances} - {i.name for i in kept})
        log.warning(
            "ignoring %d registration(s) of %s without the service credential's proof",
            len(instances) - len(kept),
            ", ".join(names),
            extra={"event": "unproven_service", "services": names},
        )
    return kept


def bearer(secret: str | None) -> dict[str, str]:
    """The headers a client of an expert sends: ``Authorization: Bearer <secret>``, none without a secret."""
    return {"Authorization": f"Bearer {secret}"} if secret else {}
