"""Layer 2's provisioning API: new nodes call home, the cluster configures them with Ansible in the
background.

A freshly installed machine runs ``pxe/call-home.sh``, which posts its name, address and facts to ``POST
/api/ready-for-provisioning`` with an enrolment token. The service records a job (SQLite), adds the node to
the YAML inventory under a file lock, and runs the playbook limited to that node through ansible-runner, a few
runs at a time. Status lives under ``/api/provisioning/*`` (API key); failures are appended to TODO.md. Start
it with ``fleetmind provision serve``; see :mod:`fleetmind.provisioning.app`.

Exceptions (each carries the HTTP status it is answered with)::

    ProvisioningError (Exception)          500
      +-- ConfigurationError (ValueError)  500  unusable settings (a missing playbook); raised before serving
      +-- AuthenticationError              401  missing, unknown, expired, used-up or revoked token / API key
      +-- InvalidNodeError                 422  a well-formed but refused node (named like a group, say)
      +-- NotFoundError                    404  an unknown node, job or token
      +-- ConflictError                    409
      |     +-- NodeBusyError              409  the node already has a job queued or running
      |     +-- NodeIdentityError          409  the name is enrolled with another MAC address
      +-- InventoryError                   503  the inventory cannot be read (never overwritten) or written
"""

from fleetmind.provisioning.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InvalidNodeError,
    InventoryError,
    NodeBusyError,
    NodeIdentityError,
    NotFoundError,
    ProvisioningError,
)
from fleetmind.provisioning.events import EventBus, EventSink, JobEvent

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "EventBus",
    "EventSink",
    "InvalidNodeError",
    "InventoryError",
    "JobEvent",
    "NodeBusyError",
    "NodeIdentityError",
    "NotFoundError",
    "ProvisioningError",
]
