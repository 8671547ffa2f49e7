"""The gateway's settings (``FLEETMIND_GATEWAY_*``), read once through :func:`get_gateway_settings`.

Where the API keys live is not here: every HTTP surface shares ``fleetmind.config.get_settings().keys_file``.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetmind.contracts.names import AGENT_SERVICE
from fleetmind.stack_settings import default, default_consul_addr


class GatewaySettings(BaseSettings):
    """Where the gateway listens, how it finds and waits for the agent, and how much one key may ask."""

    model_config = SettingsConfigDict(env_prefix="FLEETMIND_GATEWAY_", extra="ignore")

    host: str = Field(default=default("host"), description="Address to listen on.")
    port: int = Field(default=default("gateway_port"), ge=1, le=65535, description="Port to listen on.")
    agent_url: str | None = Field(
        default=None, description="Fixed agent base URL (http://host:port); unset = find it in the registry."
    )
    agent_service: str = Field(default=AGENT_SERVICE, description="Registry service name of the agent.")
    consul_addr: str | None = Field(
        default=None, description=f"Registry address; unset = CONSUL_HTTP_ADDR or {default_consul_addr()}."
    )
    request_timeout_s: float = Field(
        default=120.0, gt=0, le=3600, description="Longest a chat request may take, first byte to last."
    )
    discovery_timeout_s: float = Field(default=15.0, ge=0, le=600, description="How long to look for a healthy agent.")
    registry_ttl_s: float = Field(default=5.0, ge=0, le=300, description="Registry answer reuse.")
    requests_per_minute: int = Field(
        default=600, ge=0, description="Requests one API key may make per minute (0 = no limit)."
    )
    tokens_per_minute: int = Field(
        default=1_000_000, ge=0, description="Prompt + completion tokens one API key may use per minute (0 = no limit)."
    )
    metrics_require_key: bool = Field(
        default=False, description="Ask for an API key on /metrics too (for a gateway reachable from outside)."
    )

    @field_validator("agent_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"agent_url must be an http:// or https:// URL, got {value!r}")
        return value


@lru_cache
def get_gateway_settings() -> GatewaySettings:
    return GatewaySettings()
