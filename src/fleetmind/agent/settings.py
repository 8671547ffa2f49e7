"""The agent process's own settings, from ``FLEETMIND_AGENT_*`` variables, read by :func:`get_agent_settings`.

The shared settings (state dir, log level) stay in :mod:`fleetmind.config`; this class holds only what the
agent alone needs: how long a request may take, which experts to use when the registry should not be asked,
and which expert answers requests for the generic ``fleetmind`` model.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

GENERIC_MODEL = "fleetmind"


class AgentSettings(BaseSettings):
    """What the agent process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="FLEETMIND_AGENT_", extra="ignore")

    request_timeout_s: float = Field(
        default=300.0, gt=0, description="Upper bound on one request; a request may ask for less, never more."
    )
    experts: str | None = Field(
        default=None,
        description='Fixed experts "name=http://host:port,name2=..."; when set the registry is not asked.',
    )
    default_expert: str = Field(default="general", description=f"The expert that answers the {GENERIC_MODEL!r} model.")
    discovery_ttl_s: float = Field(default=2.0, ge=0, description="How long a registry answer is reused.")
    expert_connect_timeout_s: float = Field(default=5.0, gt=0, description="Connecting to an expert.")
    expert_read_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest silence from an expert, the wait for its first token included.",
    )
    failed_expert_cooldown_s: float = Field(
        default=10.0,
        ge=0,
        description="After a failure an expert goes to the back of the line for this long.",
    )


@lru_cache
def get_agent_settings() -> AgentSettings:
    return AgentSettings()
