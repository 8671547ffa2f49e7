"""Settings shared by every fleetmind process: where state lives and how to reach the cluster.

Each service adds its own settings class with its own env prefix; this module holds only what all of them share.
Values come from the environment (``FLEETMIND_*``), never read at import time: call :func:`get_settings`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

KEYS_FILE = "keys.json"


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/fleetmind`` or ``~/.local/state/fleetmind``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "fleetmind"


class Settings(BaseSettings):
    """What every fleetmind process needs to know."""

    model_config = SettingsConfigDict(env_prefix="FLEETMIND_", extra="ignore")

    state_dir: Path = Field(default_factory=default_state_dir, description="Keys, logs, memory, job state.")
    log_level: str = Field(default="INFO", description="Python log level name.")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names a state-changing request may name in Host/Origin, besides the loopback names and "
        "the server's own address (comma-separated; '*' allows any).",
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest request body of every server.")

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return [h.strip() for h in value.split(",") if h.strip()] if isinstance(value, str) else value

    @property
    def keys_file(self) -> Path:
        return self.state_dir / KEYS_FILE

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"


@lru_cache
def get_settings() -> Settings:
    return Settings()
