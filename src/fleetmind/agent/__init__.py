"""The agent process (layer 4): a pipecat pipeline whose brain, TwinService, answers chat requests through
experts.

A request arrives as an :class:`~fleetmind.contracts.protocol.AgentRequest`, enters the pipeline as an
``AgentRequestFrame``, is routed by TwinService to an expert (a llama-server found in the registry or listed
in ``FLEETMIND_AGENT_EXPERTS``) and comes back as output frames that the runtime turns into
:class:`~fleetmind.contracts.protocol.AgentEvent` objects, one stream per request.

Exceptions::

    AgentError (CodedError)                   base; ``code`` is the wire error code it becomes
      +-- NoExpertError                       no expert is known for the request ("no_expert")
      |     +-- UnknownModelError             the model names no expert ("model_not_found")
      +-- AllExpertsFailedError               every candidate expert failed ("expert_error")
      +-- RuntimeNotRunningError              a request was submitted to a runtime that is not running
      +-- WorkflowError                       (fleetmind.agent.workflows) the workflow engine's errors
      |     +-- WorkflowLoadError             a workflow file is invalid: file, line, field (also a ValueError)
      |     +-- WorkflowRuntimeError          a workflow ended without answering ("internal")
      +-- StateFormatError                    (fleetmind.agent.state) a saved state file is not loadable

One expert call's failures are :mod:`fleetmind.llm.chat`'s ``ExpertError`` family (also ``CodedError``s).

What TwinService does with a request is a YAML workflow (:mod:`fleetmind.agent.workflows`); memory lives in
:mod:`fleetmind.memory` and routing by meaning in :mod:`fleetmind.agent.semantic`.
"""

from __future__ import annotations

from fleetmind.contracts.errors import AgentErrorCode, CodedError


class AgentError(CodedError):
    """Base class of this package's errors."""

    code: AgentErrorCode = "internal"


class NoExpertError(AgentError):
    """No expert is known that could answer the request."""

    code: AgentErrorCode = "no_expert"


class UnknownModelError(NoExpertError):
    """The request's model is neither the routed model nor an expert's name."""

    code: AgentErrorCode = "model_not_found"


class AllExpertsFailedError(AgentError):
    """Every candidate expert failed before producing text."""

    code: AgentErrorCode = "expert_error"


class RuntimeNotRunningError(AgentError):
    """The agent runtime was asked to serve a request while it is not running."""

    code: AgentErrorCode = "unavailable"


__all__ = [
    "AgentError",
    "AllExpertsFailedError",
    "NoExpertError",
    "RuntimeNotRunningError",
    "UnknownModelError",
]
