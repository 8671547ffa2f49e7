"""The provisioning API's settings (``FLEETMIND_PROVISION_*``), read through :func:`get_provision_settings`.

Every path defaults to a file under ``<state_dir>/provisioning/`` (the shared ``FLEETMIND_STATE_DIR``), except
the playbook, which belongs to the repository's ``ansible/`` tree and is looked up relative to the working
directory. Bad values fail here, early, with a message that names the setting."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetmind.config import get_settings
from fleetmind.stack_settings import default

# an Ansible group name we are willing to create: no dashes or dots, so it can never look like a host pattern
GROUP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def _base() -> Path:
    return get_settings().state_dir / "provisioning"


class ProvisionSettings(BaseSettings):
    """Where the provisioning API listens, which files it owns and how many playbooks it runs at once."""

    model_config = SettingsConfigDict(env_prefix="FLEETMIND_PROVISION_", extra="ignore")

    host: str = Field(default=default("host"), description="Address to listen on.")
    port: int = Field(default=default("provisioning_port"), ge=1, le=65535, description="Port to listen on.")
    inventory_path: Path = Field(
        default_factory=lambda: _base() / "inventory.yaml",
        description="Ansible inventory (YAML) we maintain.",
    )
    playbook_path: Path = Field(
        default_factory=lambda: Path("ansible/playbook.yaml"), description="Playbook run for each new node."
    )
    todo_path: Path = Field(default_factory=lambda: _base() / "TODO.md", description="Failed runs, for a person.")
    db_path: Path = Field(default_factory=lambda: _base() / "jobs.sqlite3", description="Jobs and tokens.")
    runs_dir: Path = Field(default_factory=lambda: _base() / "runs", description="ansible-runner artifacts per job.")
    concurrency: int = Field(default=2, ge=1, le=64, description="Playbook runs at the same time.")
    job_timeout_s: int = Field(default=3600, ge=1, le=86400, description="Longest one playbook run may take.")
    tail_lines: int = Field(default=40, ge=1, le=1000, description="Output lines kept per job.")
    roles: list[str] = Field(default_factory=lambda: ["worker", "control"], description="Inventory groups.")
    default_role: str = Field(default="worker", description="Role of a token created without --role.")
    max_body_bytes: int = Field(default=65536, ge=1024, le=16 * 1024 * 1024, description="Largest request body.")
    events_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description=f"Mission Control's event intake (e.g. http://{default('host')}:{default('ui_port')}/api/events); "
        "unset: no forwarding.",
    )
    events_key: SecretStr | None = Field(
        default=None, description="API key for events_url, of scope operator (Mission Control's events want one)."
    )

    @field_validator("roles")
    @classmethod
    def _check_roles(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("roles must name at least one inventory group")
        for role in value:
            if not GROUP_NAME.match(role) or role in ("all", "ungrouped"):
                raise ValueError(f"role {role!r} is not a usable Ansible group name (a-z, 0-9, _; not all/ungrouped)")
        return value

    @model_validator(mode="after")
    def _check_default_role(self) -> ProvisionSettings:
        if self.default_role not in self.roles:
            raise ValueError(f"default_role {self.default_role!r} is not one of roles {self.roles}")
        return self

    @model_validator(mode="after")
    def _check_events(self) -> ProvisionSettings:
        if self.events_url and self.events_key is None:
            raise ValueError("events_url is set but events_key is not: Mission Control needs an API key")
        return self

    @property
    def reserved_names(self) -> frozenset[str]:
        """Names a node may not take: a host named like a group would widen ``--limit`` to the whole group."""
        return frozenset({"all", "ungrouped", "localhost", *self.roles})


@lru_cache
def get_provision_settings() -> ProvisionSettings:
    return ProvisionSettings()
