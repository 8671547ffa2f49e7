"""The agent process (layer 4): a pipecat pipeline whose brain, TwinService, answers chat requests through
experts.

A request arrives as an :class:`~fleetmind.agent.protocol.AgentRequest`, enters the pipeline as an
``AgentRequestFrame``, is routed by TwinService to an expert (a llama-server found in the registry or listed
in ``FLEETMIND_AGENT_EXPERTS``) and comes back as output frames that the runtime turns into
:class:`~fleetmind.agent.protocol.AgentEvent` objects, one stream per request.

Exceptions::

    AgentError (RuntimeError)                 base; ``code`` is the wire error code it becomes
      +-- NoExpertError                       no expert is known for the request ("no_expert")
      +-- ExpertError                         one expert call failed ("expert_error")
      |     +-- ExpertUnavailableError        could not connect, answered 5xx, or timed out waiting
      |     +-- ExpertRejectedError           answered 4xx: the request itself is wrong ("invalid_request")
      |     +-- ExpertProtocolError           the expert answered something that is not a chat stream
      +-- AllExpertsFailedError               every candidate expert failed ("expert_error")
      +-- RuntimeNotRunningError              a request was submitted to a runtime that is not running
      +-- WorkflowError                       (fleetmind.agent.workflows) the workflow engine's errors
      |     +-- WorkflowLoadError             a workflow file is invalid: file, line, field (also a ValueError)
      |     +-- WorkflowRuntimeError          a workflow ended without answering ("internal")
      +-- StateFormatError                    (fleetmind.agent.state) a saved state file is not loadable

What TwinService does with a request is a YAML workflow (:mod:`fleetmind.agent.workflows`); memory lives in
:mod:`fleetmind.memory` and routing by meaning in :mod:`fleetmind.agent.semantic`.
"""

from __future__ import annotations


class AgentError(RuntimeError):
    """Base class of this package's errors."""

    code = "internal"


class NoExpertError(AgentError):
    """No expert is known that could answer the request."""

    code = "no_expert"


class ExpertError(AgentError):
    """One call to one expert failed."""

    code = "expert_error"


class ExpertUnavailableError(ExpertError):
    """The expert could not be reached, answered with an error status, or did not answer in time."""


class ExpertRejectedError(ExpertError):
    """The expert refused the request (HTTP 4xx), e.g. an unsupported ``response_format``."""

    code = "invalid_request"


class ExpertProtocolError(ExpertError):
    """The expert's answer is not a well-formed chat completion stream."""


class AllExpertsFailedError(AgentError):
    """Every candidate expert failed before producing text."""

    code = "expert_error"


class RuntimeNotRunningError(AgentError):
    """The agent runtime was asked to serve a request while it is not running."""

    code = "unavailable"


__all__ = [
    "AgentError",
    "AllExpertsFailedError",
    "ExpertError",
    "ExpertProtocolError",
    "ExpertRejectedError",
    "ExpertUnavailableError",
    "NoExpertError",
    "RuntimeNotRunningError",
]
