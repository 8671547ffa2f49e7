"""Settings of the tools layer: policy, plugin directory, workspace, endpoints, allowlists and sandbox limits.

Read from the environment with the prefix ``FLEETMIND_TOOLS_`` (``FLEETMIND_TOOLS_POLICY='{"safe": "approve"}'``,
``FLEETMIND_TOOLS_HTTP_ALLOWLIST='["127.0.0.1"]'``) and from an optional YAML file named by
``FLEETMIND_TOOLS_CONFIG`` (or passed to :func:`get_tools_settings`); the environment wins over the file. Nothing
is read at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

__all__ = ["ToolsSettings", "get_tools_settings"]


class ToolsSettings(BaseSettings):
    """What the tool runner and the built-in tools may do."""

    model_config = SettingsConfigDict(env_prefix="FLEETMIND_TOOLS_", extra="ignore")

    policy: dict[str, str] = Field(
        default_factory=lambda: {"safe": "run", "approval": "approve", "forbidden": "refuse"},
        description="risk level -> action (run | approve | refuse).",
    )
    overrides: dict[str, str] = Field(default_factory=dict, description="tool name -> action, wins over policy.")
    approval_timeout_s: float = Field(default=300.0, gt=0, description="How long a call waits for a person.")
    plugin_dir: Path | None = Field(default=None, description="Extra *.py files whose Tool objects are registered.")
    workspace: Path | None = Field(default=None, description="Files tools may touch (default: STATE_DIR/workspace).")
    llm_url: str | None = Field(default=None, description="OpenAI-compatible endpoint for planner/orchestrator/swarm.")
    llm_model: str = "general"
    experts: dict[str, str] = Field(default_factory=dict, description="expert name -> base URL, for swarm.")
    embeddings_url: str | None = None
    consul_addr: str | None = None
    nomad_addr: str | None = None
    cluster_logs_dir: Path | None = None
    http_allowlist: list[str] = Field(
        default_factory=list, description="Hosts http_get/port_check may reach (exact, or *.domain); none by default."
    )
    wol_broadcast: str = "255.255.255.255"
    wol_port: int = 9
    ansible_inventory: Path | None = None
    sandbox_memory_mb: int = Field(default=512, ge=32)
    sandbox_cpu_s: int = Field(default=10, ge=1)
    sandbox_wall_s: float = Field(default=15.0, gt=0)
    sandbox_max_procs: int = Field(default=32, ge=1)
    sandbox_python: str = "/usr/bin/python3"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = os.environ.get("FLEETMIND_TOOLS_CONFIG")
        if config:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=Path(config)))
        return tuple(sources)


def get_tools_settings(config: Path | None = None, **overrides: Any) -> ToolsSettings:
    """Settings from the environment, over ``config`` (a YAML file) when given, with ``overrides`` on top."""
    if config is not None:
        import yaml

        if not config.is_file():
            raise ValueError(f"tools config {config} does not exist")
        data = yaml.safe_load(config.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"tools config {config} must be a YAML mapping")
        env = ToolsSettings().model_dump(exclude_unset=True)
        return ToolsSettings(**{**data, **env, **overrides})
    return ToolsSettings(**overrides)
