"""Names that more than one layer spells: how experts are tagged and named, and the routed model name."""

from __future__ import annotations

from typing import Final

#: The Consul/registry tag every expert (a chat llama-server) carries; the agent finds experts by it.
EXPERT_TAG: Final = "expert"
#: The tag that names an expert: ``expert:<name>``.
EXPERT_TAG_PREFIX: Final = "expert:"
#: An expert's service name: ``expert-<name>``.
EXPERT_SERVICE_PREFIX: Final = "expert-"
#: The model name that lets the agent route (any other model name is an expert's).
ROUTED_MODEL: Final = "fleetmind"
#: The embedding server's service name (not an expert: the router never sends a chat there).
EMBEDDER_SERVICE: Final = "llama-embedder"
#: The RPC workers' service name.
RPC_SERVICE: Final = "llamacpp-rpc"
#: The agent's (and Mission Control's) service name, and the gateway's.
AGENT_SERVICE: Final = "pipecatapp"
GATEWAY_SERVICE: Final = "moe-gateway"
#: The owner an admin sees: every owner's conversations and memories.
ANY_OWNER: Final = "*"


def expert_name(service_name: str, tags: list[str] | tuple[str, ...]) -> str:
    """An expert's name: from its ``expert:<name>`` tag, else from its ``expert-<name>`` service name."""
    for tag in tags:
        if tag.startswith(EXPERT_TAG_PREFIX) and len(tag) > len(EXPERT_TAG_PREFIX):
            return tag[len(EXPERT_TAG_PREFIX) :]
    return service_name.removeprefix(EXPERT_SERVICE_PREFIX)


__all__ = [
    "AGENT_SERVICE",
    "ANY_OWNER",
    "EMBEDDER_SERVICE",
    "EXPERT_SERVICE_PREFIX",
    "EXPERT_TAG",
    "EXPERT_TAG_PREFIX",
    "GATEWAY_SERVICE",
    "ROUTED_MODEL",
    "RPC_SERVICE",
    "expert_name",
]
