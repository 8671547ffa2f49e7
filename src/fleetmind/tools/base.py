"""What a tool is: a name, a JSON schema of arguments, a risk level, a timeout and a function; and what it gets.

A tool function receives one :class:`ToolCall` (its validated arguments, who asked, the shared
:class:`ToolContext` and the runner, for tools that call other tools) and returns anything JSON-serialisable; it
may be sync (run in a worker thread) or async. It raises :class:`~fleetmind.tools.errors.ToolRefusedError` to
refuse a call and :class:`~fleetmind.tools.errors.ToolExecutionError` to fail with a message for the model.
Declare one with :func:`tool`; register it under the ``fleetmind.tools`` entry-point group (or drop the module in
the plugin directory) — the built-ins do exactly that.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from fleetmind.tools.errors import ToolRegistrationError

if TYPE_CHECKING:
    from fleetmind.tools.runner import ToolRunner

__all__ = ["RISKS", "Risk", "Tool", "ToolCall", "ToolContext", "ToolSpec", "tool"]

Risk = Literal["safe", "approval", "forbidden"]
#: The risk levels a tool may declare; the policy maps each to run / ask a person / refuse.
RISKS: tuple[str, ...] = ("safe", "approval", "forbidden")
ToolFunc = Callable[["ToolCall"], Any]


@dataclass(frozen=True)
class ToolSpec:
    """The public description of a tool: what the model and the CLI see."""

    name: str
    description: str
    risk: str
    timeout_s: float
    parameters: dict[str, Any]

    @property
    def summary(self) -> str:
        """The description's first line."""
        return self.description.strip().splitlines()[0] if self.description.strip() else ""


@dataclass(frozen=True)
class Tool:
    """A registered tool. ``risk_of`` may raise the risk of one call from its arguments; ``check_args`` may refuse
    arguments the schema cannot describe (raising ToolArgumentsError) before any policy or person sees the call;
    ``always_approve`` means no policy can let it run without a person."""

    name: str
    description: str
    parameters: dict[str, Any]
    func: ToolFunc
    risk: str = "safe"
    timeout_s: float = 30.0
    risk_of: Callable[[dict[str, Any]], str] | None = None
    always_approve: bool = False
    check_args: Callable[[dict[str, Any]], None] | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ToolRegistrationError(f"tool name {self.name!r} must be letters, digits and underscores")
        if self.risk not in RISKS:
            raise ToolRegistrationError(f"tool {self.name}: risk {self.risk!r} is not one of {RISKS}")
        if self.timeout_s <= 0:
            raise ToolRegistrationError(f"tool {self.name}: timeout_s must be positive")
        if self.parameters.get("type") != "object":
            raise ToolRegistrationError(f"tool {self.name}: parameters must be a JSON schema of type 'object'")
        try:
            Draft202012Validator.check_schema(self.parameters)
        except SchemaError as exc:
            raise ToolRegistrationError(f"tool {self.name}: invalid parameters schema: {exc.message}") from None

    def call_risk(self, arguments: Mapping[str, Any]) -> str:
        """The risk of this particular call (never lower than the declared one)."""
        if self.risk_of is None:
            return self.risk
        risk = self.risk_of(dict(arguments))
        if risk not in RISKS:
            raise ToolRegistrationError(f"tool {self.name}: risk_of returned {risk!r}, not one of {RISKS}")
        return max(risk, self.risk, key=RISKS.index)

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.risk, self.timeout_s, self.parameters)


def tool(
    name: str,
    description: str,
    parameters: dict[str, Any] | None = None,
    *,
    risk: str = "safe",
    timeout_s: float = 30.0,
    risk_of: Callable[[dict[str, Any]], str] | None = None,
    always_approve: bool = False,
    check_args: Callable[[dict[str, Any]], None] | None = None,
) -> Callable[[ToolFunc], Tool]:
    """Decorator: turn ``def f(call: ToolCall)`` into a :class:`Tool` (the module attribute becomes the tool)."""
    schema: dict[str, Any] = parameters if parameters is not None else {"type": "object", "properties": {}}
    schema.setdefault("additionalProperties", False)

    def wrap(func: ToolFunc) -> Tool:
        return Tool(
            name=name,
            description=description,
            parameters=schema,
            func=func,
            risk=risk,
            timeout_s=timeout_s,
            risk_of=risk_of,
            always_approve=always_approve,
            check_args=check_args,
        )

    return wrap


@dataclass
class SandboxLimits:
    """Limits for code_runner (and the shell tool's child process)."""

    memory_mb: int = 512
    cpu_s: int = 10
    wall_s: float = 15.0
    max_procs: int = 32
    max_file_mb: int = 16
    python: str = "/usr/bin/python3"


@dataclass
class ToolContext:
    """Everything tools share: where they may write, which endpoints they may reach, the live services.

    Built from :class:`~fleetmind.tools.settings.ToolsSettings` by :func:`fleetmind.tools.runner.build_runner`,
    or by hand in tests and in the agent (which passes its own memory store and LLM endpoint).
    """

    workspace: Path
    state_dir: Path | None = None
    llm_url: str | None = None
    llm_model: str = "general"
    llm_api_key: str | None = None
    experts: dict[str, str] = field(default_factory=dict)
    # The agent's expert directory, when the tools run in the agent process (set by its composition root): the
    # planner, orchestrator and swarm reach the same experts the agent routes to. Returns name -> base URL.
    expert_directory: Callable[[], Awaitable[dict[str, str]]] | None = None
    embeddings_url: str | None = None
    memory: Any = None
    memory_dir: Path | None = None
    consul_addr: str | None = None
    nomad_addr: str | None = None
    cluster_logs_dir: Path | None = None
    http_allowlist: tuple[str, ...] = ()
    wol_broadcast: str = "255.255.255.255"
    wol_port: int = 9
    ansible_inventory: Path | None = None
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)
    shell_timeout_s: float = 60.0
    extra: dict[str, Any] = field(default_factory=dict)

    async def known_experts(self) -> dict[str, str]:
        """Every expert the tools may ask: the agent's directory (healthy ones), then any listed in the settings."""
        found = dict(await self.expert_directory()) if self.expert_directory is not None else {}
        return {**found, **{k: v for k, v in self.experts.items() if k not in found}}

    async def llm_endpoint(self, expert: str | None = None) -> str | None:
        """The base URL to ask: the named expert, else the configured endpoint, else the default expert's."""
        experts = await self.known_experts() if expert or not self.llm_url else {}
        if expert and expert in experts:
            return experts[expert]
        return self.llm_url or experts.get(self.llm_model) or next(iter(experts.values()), None)


@dataclass
class ToolCall:
    """One invocation as the tool function sees it: validated ``args``, who asked, shared context and runner."""

    id: str
    tool: str
    args: dict[str, Any]
    requester: str
    context: ToolContext
    runner: ToolRunner
