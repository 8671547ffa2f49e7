"""The cluster package's exception hierarchy (drawn in the package docstring), shared by jobspec, client and
embedded.

``client`` re-exports these names, so ``from fleetmind.cluster.client import ClusterError`` keeps working.
"""

from __future__ import annotations


class ClusterError(RuntimeError):
    """Base class of this package's errors."""


class RegistryUnavailable(ClusterError):
    """The registry could not be reached or answered with an error."""


class OrchestratorUnavailable(ClusterError):
    """The orchestrator (Nomad API) could not be reached or answered with a server error."""


class JobNotFound(ClusterError, LookupError):
    """The orchestrator has no job (or allocation) with the requested ID."""


class JobRejected(ClusterError, ValueError):
    """The orchestrator refused the request as invalid (HTTP 400); the message carries its reason."""


class JobSpecError(ClusterError, ValueError):
    """A job file does not parse or validate; the message names the file and, where known, line and field."""
