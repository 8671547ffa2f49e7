"""Layer 7, self-healing: watch every job, diagnose a failure, decide one allowlisted action, heal, audit, adapt.

The loop (:class:`~fleetmind.supervisor.loop.Supervisor`): :mod:`.detect` reads jobs, allocations, task events
and service checks through the one cluster client (so the embedded backend and a real Nomad are one code path);
:mod:`.diagnose` gathers bounded diagnostics; :mod:`.rules` decide the well-understood cases and
:mod:`.reflect` asks the LLM (grammar-constrained JSON over an allowlist) for the rest; :mod:`.guard` keeps the
cooldown, the attempt budget and the storm rule; :mod:`.heal` applies the action through the cluster client;
:mod:`.audit` writes ``<state>/supervisor/audit.jsonl`` and publishes each line; :mod:`.cases` turns what could
not be healed into YAML test cases that :mod:`.evolve` searches reflection variants against.

Errors::

    SupervisorError
    ├── ActionRefused    an action outside the allowlist, or arguments it does not take
    └── HealFailed       the cluster refused or could not apply an action
"""

from __future__ import annotations

from fleetmind.http.auth import Caller, service_headers


class SupervisorError(Exception):
    """Base of the supervisor's errors."""


class ActionRefused(SupervisorError):
    """A decision named an action outside the allowlist (or gave it arguments it does not take)."""


class HealFailed(SupervisorError):
    """The cluster refused or could not apply an action."""


#: Who the supervisor is to Mission Control when it shows the stack's service credential.
SUPERVISOR = Caller("supervisor", "supervisor", "operator")


def supervisor_headers(secret: str) -> dict[str, str]:
    """The headers of a call to Mission Control as the supervisor, under the stack's service ``secret``."""
    return service_headers(secret, SUPERVISOR)
