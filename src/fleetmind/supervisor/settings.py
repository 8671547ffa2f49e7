"""The supervisor's settings (``FLEETMIND_SUPERVISOR_*``), read through :func:`get_supervisor_settings`.

Its files go under ``<state dir>/supervisor/`` (audit, cases, the kept reflection variant); the embedded
cluster's task logs are read from ``<state dir>/logs``. The reflection LLM is ``llm_url`` when set, else the
first healthy expert the registry lists (tag ``expert``), with the stack's service secret as its key. Events go to
Mission Control's ``events_url`` with ``events_key`` (an operator key), else the stack's service secret.
Bad values fail here, early.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetmind.config import get_settings


class SupervisorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEETMIND_SUPERVISOR_", extra="ignore", env_ignore_empty=True)

    state_dir: Path = Field(default_factory=lambda: get_settings().state_dir, description="The stack's state dir.")
    logs_dir: Path | None = Field(default=None, description="Task logs (default: <state dir>/logs).")
    interval_s: float = Field(default=2.0, gt=0, le=300, description="Seconds between two looks at the cluster.")
    llm_url: str = Field(default="", description="The reflection llama-server ('' = the first healthy expert).")
    llm_key: SecretStr | None = Field(default=None, description="Its API key (default: the service secret).")
    events_url: str = Field(default="", description="Mission Control's POST /api/events ('' = none).")
    events_key: SecretStr | None = Field(
        default=None, description="An operator key for events_url (default: the stack's service secret)."
    )
    approval_level: Literal["low", "medium", "high"] = Field(
        default="high", description="Actions at or above this risk wait for a person."
    )
    max_memory_mb: int = Field(default=4096, ge=64, description="Largest memory grant made without a person.")
    fallback_model: Path | None = Field(default=None, description="Model a job whose model is missing falls back to.")
    ignore_jobs: list[str] = Field(default_factory=lambda: ["supervisor"], description="Jobs not watched.")
    cooldown_s: float = Field(default=5.0, ge=0, description="Least seconds between two actions on one job.")
    budget: int = Field(default=3, ge=1, le=20, description="Actions per job before it is escalated.")
    storm_window_s: float = Field(default=120.0, ge=0, description="A failure back within this of a fix escalates.")
    unhealthy_after_s: float = Field(default=3.0, ge=0, description="A check failing this long is a hung task.")

    @field_validator("llm_url", "events_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s):// URL or empty")
        return value

    @property
    def task_logs(self) -> Path:
        return self.logs_dir or self.state_dir / "logs"


def get_supervisor_settings(**overrides: object) -> SupervisorSettings:
    return SupervisorSettings(**overrides)  # type: ignore[arg-type]
