"""Power that follows demand: wake sleeping nodes by Wake-on-LAN when the queue or latency grows, drain and sleep
idle ones, and never sleep the control node or a node that still holds work.

- :mod:`.nodes` reads the nodes (name, address, MAC, class) from the Ansible inventory the provisioning API keeps;
- :mod:`.wake` sends a node its magic packet (limited or directed broadcast) through :mod:`fleetmind.contracts.wol`;
- :mod:`.policy` is the decision, pure: queue depth, p95 latency against a target, idle time, a minimum number of
  nodes awake and a schedule in, wake / drain / undrain / sleep decisions out;
- :mod:`.agent` runs the policy against the cluster (``fleetmind power agent``): it observes, decides, acts through
  the cluster client (Nomad node drain) and Wake-on-LAN, waits for a woken node to rejoin, and records every
  decision as an event for Mission Control and a line of ``<state dir>/power/audit.jsonl``.

Exceptions::

    PowerError (Exception)
      +-- InventoryReadError   the inventory cannot be read or has the wrong shape
      +-- UnknownNodeError     no such node in the inventory
      +-- WakeError            the node cannot be woken (no MAC, no address for a directed broadcast, send failed)
"""

from fleetmind.power.errors import InventoryReadError, PowerError, UnknownNodeError, WakeError

__all__ = ["InventoryReadError", "PowerError", "UnknownNodeError", "WakeError"]
