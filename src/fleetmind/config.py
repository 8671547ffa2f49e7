"""Settings shared by every fleetmind process: where state lives and how to reach the cluster.

Each service adds its own settings class with its own env prefix; this module holds only what all of them share.
Values come from the environment (``FLEETMIND_*``), never read at import time: call :func:`get_settings`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/fleetmind`` or ``~/.local/state/fleetmind``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "fleetmind"


class Settings(BaseSettings):
    """What every fleetmind process needs to know."""

    model_config = SettingsConfigDict(env_prefix="FLEETMIND_", extra="ignore")

    state_dir: Path = Field(default_factory=default_state_dir, description="Keys, logs, memory, job state.")
    log_level: str = Field(default="INFO", description="Python log level name.")

    @property
    def keys_file(self) -> Path:
        return self.state_dir / "keys.json"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"


@lru_cache
def get_settings() -> Settings:
    return Settings()
