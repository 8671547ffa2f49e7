"""Error codes as closed types: what an agent error may say on the wire, and the base of errors that carry one."""

from __future__ import annotations

from typing import Literal

#: The ``code`` of an agent ``error`` event (:class:`~fleetmind.contracts.protocol.AgentEvent`):
#: ``timeout`` (no answer in time), ``no_expert`` (none is available), ``model_not_found`` (the model names no
#: expert), ``expert_error`` (every expert tried failed), ``cancelled``, ``invalid_request`` (the request itself is
#: wrong, e.g. a bad response_format, or its id is already in flight), ``approval_denied`` (a tool the answer
#: needed was denied), ``unavailable`` (the agent is stopping), ``internal`` (a bug; see the log).
AgentErrorCode = Literal[
    "timeout",
    "no_expert",
    "model_not_found",
    "expert_error",
    "cancelled",
    "invalid_request",
    "approval_denied",
    "unavailable",
    "internal",
]


class CodedError(RuntimeError):
    """An error that becomes an agent ``error`` event with :attr:`code`."""

    code: AgentErrorCode = "internal"


__all__ = ["AgentErrorCode", "CodedError"]
