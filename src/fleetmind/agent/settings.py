"""The agent process's own settings, from ``FLEETMIND_AGENT_*`` variables, read by :func:`get_agent_settings`.

The shared settings (state dir, log level) stay in :mod:`fleetmind.config`; this class holds only what the
agent alone needs: how long a request may take, which experts to use when the registry should not be asked,
which expert answers requests for the generic ``fleetmind`` model, which workflow runs each request, and where
memory lives and gets its embeddings.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetmind.contracts.names import ROUTED_MODEL

GENERIC_MODEL = ROUTED_MODEL


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
    discovery_stale_s: float = Field(
        default=60.0,
        ge=0,
        description="After discovery_ttl_s, how much longer a request is served the last answer while the registry is "
        "asked in the background (0: the request waits for the registry).",
    )
    expert_connect_timeout_s: float = Field(default=5.0, gt=0, description="Connecting to an expert.")
    expert_read_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest silence from an expert, the wait for its first token included.",
    )
    stream_hold_ms: float = Field(
        default=50.0,
        ge=0,
        le=1000,
        description=(
            "A streamed answer's text read by HTTP (the gateway, Mission Control) goes out at most this often "
            "after its first piece: the tokens of that time in one chunk, the answer's end at once. Each chunk costs "
            "the agent, the gateway and the client a wake-up on the cores the model decodes on (measured on two "
            "cores: decode 0.957x direct per token, 0.995x at 50 ms). 0: every token as it comes. Voice is never held."
        ),
    )
    loop_guard: bool = Field(
        default=True,
        description="End an answer that repeats itself (fleetmind.llm.loop_guard) with finish_reason length.",
    )
    failed_expert_cooldown_s: float = Field(
        default=10.0,
        ge=0,
        description="After a failure an expert goes to the back of the line for this long.",
    )
    workflow: Path | None = Field(
        default=None,
        description=(
            "A workflow YAML file (or the name of a packaged one) to run for every request "
            "instead of the packaged default_agent_loop.yaml."
        ),
    )
    step_plugins: str = Field(
        default="",
        description="Comma-separated Python modules with register_steps(registry), loaded into the step registry.",
    )
    embeddings_url: str | None = Field(
        default=None,
        description="A llama-server --embedding --pooling mean serving all-MiniLM-L6-v2; enables memory and "
        "routing by meaning.",
    )
    embeddings_autostart: bool = Field(
        default=False,
        description="Without embeddings_url: start such a server as a child process (converting the packaged "
        "model under the state dir on first use).",
    )
    memory_dir: Path | None = Field(
        default=None, description="Long-term memory directory (default: <state dir>/agent/memory)."
    )
    history_max_messages: int = Field(default=40, ge=1, description="Messages kept per conversation.")
    history_max_conversations: int = Field(default=1000, ge=1, description="Conversations kept in short-term memory.")

    @property
    def plugin_modules(self) -> list[str]:
        return [m.strip() for m in self.step_plugins.split(",") if m.strip()]


@lru_cache
def get_agent_settings() -> AgentSettings:
    return AgentSettings()
