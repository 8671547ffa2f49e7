"""The cluster's management token: how a client finds it, and how ``fleetmind up`` makes it.

The embedded Nomad and Consul APIs answer only to this token, as real agents with ACLs on do. It is made once,
at the first start (``secrets.token_urlsafe``), and kept 0600 in the state dir (``cluster.token``). A client
finds its token the way HashiCorp's tools do: ``NOMAD_TOKEN`` for the Nomad API and ``CONSUL_HTTP_TOKEN`` for
the Consul API; failing that, the token file in ``FLEETMIND_STATE_DIR`` (so ``fleetmind status`` works on the
machine that runs ``fleetmind up``). Jobs the stack launches get it through their ``env``.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from fleetmind.atomic import write_atomic
from fleetmind.cluster.errors import ClusterError
from fleetmind.stack_settings import CLUSTER_TOKEN_FILE

NOMAD_TOKEN_ENV = "NOMAD_TOKEN"
CONSUL_TOKEN_ENV = "CONSUL_HTTP_TOKEN"
TOKEN_MODE = 0o600
TOKEN_FILE = CLUSTER_TOKEN_FILE


def token_file(state_dir: Path) -> Path:
    """Where the embedded cluster's management token lives in ``state_dir``."""
    return state_dir / TOKEN_FILE


def new_token() -> str:
    return secrets.token_urlsafe(32)


def read_token(path: Path) -> str | None:
    """The token in ``path``, or None when there is no (readable, non-empty) token file."""
    try:
        token = path.read_text().strip()
    except OSError:
        return None
    return token or None


def ensure_token(path: Path) -> str:
    """The token in ``path``; made (0600) when there is none. A token file others may read is refused."""
    token = read_token(path)
    if token is None:
        token = new_token()
        write_atomic(path, token.encode() + b"\n", mode=TOKEN_MODE)
        return token
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ClusterError(f"{path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")
    return token


def client_token(env_name: str, state_dir: Path | None = None) -> str | None:
    """The token a client sends: ``$env_name`` if set, else the state dir's token file, else None."""
    from_env = os.environ.get(env_name, "").strip()
    if from_env:
        return from_env
    if state_dir is None:
        from fleetmind.config import get_settings

        state_dir = get_settings().state_dir
    return read_token(token_file(state_dir))
