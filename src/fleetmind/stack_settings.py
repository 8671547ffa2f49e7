"""Where the stack and the cluster listen, and where their files live: the one source of every default.

``fleetmind up``/``status``/``down``/``doctor`` build their options from :class:`StackSettings`' fields, the stack's
plan gives its values to the jobs, and each service's own settings take their default port from here. Values come
from ``FLEETMIND_STACK_*`` variables (``FLEETMIND_STATE_DIR`` and ``FLEETMIND_JOBS_DIR`` keep their names), then from
the defaults below. A running ``up`` writes what it was given to ``<state dir>/stack.json`` (see
:mod:`fleetmind.stack_record`), so the other commands find a stack started on other ports.

Errors: a bad value raises pydantic's ``ValidationError`` (a ``ValueError``); a missing jobs folder raises
:class:`JobsFolderMissing` (a ``FileNotFoundError``) that says how to fix it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetmind.config import KEYS_FILE, default_state_dir

JOBS_DIR_ENV = "FLEETMIND_JOBS_DIR"
# File names inside the state dir. The cluster token and the service secret are written by their own modules
# (cluster/token.py, security/service.py); this is where their names are spelled.
CLUSTER_TOKEN_FILE = "cluster.token"
SERVICE_SECRET_FILE = "service.secret"
RECORD_FILE = "stack.json"

# Each port of the stack: its field name, and who listens there (the CLI's help and doctor's check name).
PORTS: dict[str, str] = {
    "gateway_port": "gateway",
    "ui_port": "Mission Control",
    "expert_port": "expert",
    "embeddings_port": "embeddings",
    "coding_port": "coding",
    "nomad_port": "Nomad API",
    "consul_port": "Consul API",
}


class JobsFolderMissing(FileNotFoundError):
    """No job specs where the settings point; the message names the folder and the fix."""


def _port(default: int, what: str, *, any_free: bool = False) -> Any:
    return Field(default=default, ge=0 if any_free else 1, le=65535, description=what)


class StackSettings(BaseSettings):
    """Host, ports, sizes and folders of the embedded stack (and the addresses of its Nomad and Consul APIs)."""

    model_config = SettingsConfigDict(env_prefix="FLEETMIND_STACK_", extra="ignore", populate_by_name=True)

    model: str = Field(default="", description="Catalogue name or path of a GGUF file ('': the packaged model).")
    host: str = Field(default="127.0.0.1", min_length=1, description="Address every service binds to.")
    gateway_port: int = _port(8080, "Port of the OpenAI-compatible gateway (/v1).")
    ui_port: int = _port(8000, "Port of Mission Control (the agent's web UI and API).")
    expert_port: int = _port(8090, "Port of the llama-server expert 'general'.")
    embeddings_port: int = _port(8091, "Port of the embedding server (long-term memory, routing).")
    coding_port: int = _port(8092, "Port of the llama-server expert 'coding'.")
    nomad_port: int = _port(4646, "Port of the embedded orchestrator's Nomad API (0: any free port).", any_free=True)
    consul_port: int = _port(8500, "Port of the embedded registry's Consul API (0: any free port).", any_free=True)
    provisioning_port: int = _port(8001, "Port of the provisioning API new nodes call home to (not run by `up`).")
    threads: int = Field(default=0, ge=0, le=256, description="llama-server threads (0: up to 4, by CPU count).")
    ctx_size: int = Field(default=4096, ge=256, le=1 << 20, description="llama-server context size, in tokens.")
    ready_timeout_s: float = Field(
        default=180.0, gt=0, le=3600, description="How long `up` waits for every service to pass its health check."
    )
    state_dir: Path = Field(
        default_factory=default_state_dir,
        validation_alias=AliasChoices("FLEETMIND_STATE_DIR"),
        description="Keys, tokens, logs, memory and the running stack's record.",
    )
    jobs_dir_override: Path | None = Field(
        default=None,
        validation_alias=AliasChoices(JOBS_DIR_ENV),
        description="Folder of the Nomad job specs (default: the ones installed with fleetmind).",
    )

    @model_validator(mode="after")
    def _distinct_ports(self) -> StackSettings:
        seen: dict[int, str] = {}
        for name in PORTS:
            port = getattr(self, name)
            if port == 0:
                continue  # the system picks a free one (the record names it)
            if port in seen:
                raise ValueError(f"{name} and {seen[port]} are both {port}: every service needs its own port")
            seen[port] = name
        return self

    def ports(self) -> dict[str, int]:
        """Field name -> port, for every listener of the stack."""
        return {name: getattr(self, name) for name in PORTS}

    @property
    def llama_threads(self) -> int:
        return self.threads or max(1, min(4, os.cpu_count() or 1))

    @property
    def nomad_addr(self) -> str:
        return f"http://{_url_host(self.host)}:{self.nomad_port}"

    @property
    def consul_addr(self) -> str:
        return f"{_url_host(self.host)}:{self.consul_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.gateway_port}/v1"

    @property
    def ui_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.ui_port}/"

    @property
    def embeddings_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.embeddings_port}"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def keys_file(self) -> Path:
        return self.state_dir / KEYS_FILE

    @property
    def cluster_token_file(self) -> Path:
        return self.state_dir / CLUSTER_TOKEN_FILE

    @property
    def service_secret_file(self) -> Path:
        return self.state_dir / SERVICE_SECRET_FILE

    @property
    def record_file(self) -> Path:
        return self.state_dir / RECORD_FILE

    @property
    def jobs_dir(self) -> Path:
        """The job specs: ``FLEETMIND_JOBS_DIR``, else ``fleetmind/jobs`` as installed (a link to the checkout's
        ``jobs/`` in a checkout, a copy in a wheel)."""
        if self.jobs_dir_override is not None:
            path = self.jobs_dir_override
            where = f"{JOBS_DIR_ENV}={path}"
        else:
            path = packaged_jobs_dir()
            where = f"the installed job specs at {path}"
        if not path.is_dir() or not any(path.glob("*.nomad.hcl")):
            raise JobsFolderMissing(
                f"no job specs (*.nomad.hcl) in {where}: set {JOBS_DIR_ENV} to a folder of job specs, e.g. the "
                "fleetmind checkout's jobs/, or reinstall fleetmind"
            )
        return path


def packaged_jobs_dir() -> Path:
    """``fleetmind/jobs`` through the package's resources (always a real folder: fleetmind is never zipped)."""
    return Path(str(resources.files("fleetmind") / "jobs"))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def default(name: str) -> Any:
    """A field's default, for another module's own default (a service's port, a client's address)."""
    field = StackSettings.model_fields[name]
    return field.get_default(call_default_factory=True)


def default_nomad_addr() -> str:
    return f"http://{_url_host(default('host'))}:{default('nomad_port')}"


def default_consul_addr() -> str:
    return f"{_url_host(default('host'))}:{default('consul_port')}"


@lru_cache
def get_stack_settings() -> StackSettings:
    return StackSettings()
