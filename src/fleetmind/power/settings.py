"""The power agent's settings (``FLEETMIND_POWER_*``), read through :func:`get_power_settings`.

The inventory defaults to the one the provisioning API keeps (``<state dir>/provisioning/inventory.yaml``), the
audit log to ``<state dir>/power/audit.jsonl``. Bad values fail here, early, naming the setting."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetmind.config import get_settings
from fleetmind.power.policy import PolicyConfig, Window
from fleetmind.power.wake import Mode
from fleetmind.stack_settings import default


def _state() -> Path:
    return get_settings().state_dir


class PowerSettings(BaseSettings):
    """What the power agent reads, where it writes, and the policy's knobs."""

    model_config = SettingsConfigDict(env_prefix="FLEETMIND_POWER_", extra="ignore")

    inventory: Path = Field(
        default_factory=lambda: _state() / "provisioning" / "inventory.yaml",
        description="The Ansible inventory (YAML) with the nodes, their MACs and classes.",
    )
    audit_log: Path = Field(
        default_factory=lambda: _state() / "power" / "audit.jsonl", description="One JSON line per decision."
    )
    wol_mode: Mode = Field(default="broadcast", description="broadcast (own segment) or directed (node's subnet).")
    wol_port: int = Field(default=9, ge=1, le=65535, description="UDP port of the magic packet.")
    metrics_url: str | None = Field(
        default=f"http://{default('host')}:{default('gateway_port')}/metrics",
        description="The gateway's Prometheus metrics ('' for none).",
    )
    events_url: str | None = Field(
        default=None,
        description=f"Mission Control's event intake, e.g. http://{default('host')}:{default('ui_port')}/api/events.",
    )
    events_key: SecretStr | None = Field(default=None, description="Operator API key for events_url.")
    interval_s: float = Field(default=10.0, gt=0, le=3600, description="Seconds between two decisions.")
    wake_timeout_s: float = Field(default=300.0, gt=0, description="How long a woken node has to rejoin.")
    sleep_command: str = Field(
        default="ansible-playbook -i {inventory} ansible/playbooks/sleep.yaml --limit {node}",
        description="Run to put a drained node to sleep ({inventory} and {node} are filled in; never a shell).",
    )
    latency_target_s: float = Field(default=10.0, gt=0)
    slots_per_node: int = Field(default=4, ge=1)
    min_awake: int = Field(default=1, ge=1)
    idle_before_sleep_s: float = Field(default=600.0, ge=0)
    cooldown_s: float = Field(default=300.0, ge=0)
    schedule: str = Field(default="", description="Windows like '08:00-18:00=3,18:00-22:00=2' ('' for none).")
    health_host: str = Field(default="127.0.0.1", description="Address of the agent's GET /health (its job's check).")
    health_port: int | None = Field(
        default=None, ge=0, le=65535, description="Port of GET /health (0: any free one; unset: no endpoint)."
    )

    @field_validator("metrics_url", "events_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _check(self) -> PowerSettings:
        if self.events_url and self.events_key is None:
            raise ValueError("events_url is set but events_key is not: Mission Control needs an operator key")
        self.policy()  # a bad schedule or water mark fails now, not at the first decision
        return self

    def policy(self) -> PolicyConfig:
        windows = tuple(Window.parse(w) for w in self.schedule.split(",") if w.strip())
        return PolicyConfig(
            latency_target_s=self.latency_target_s,
            slots_per_node=self.slots_per_node,
            min_awake=self.min_awake,
            idle_before_sleep_s=self.idle_before_sleep_s,
            cooldown_s=self.cooldown_s,
            schedule=windows,
        )


def get_power_settings(**overrides: object) -> PowerSettings:
    return PowerSettings(**overrides)  # type: ignore[arg-type]
