"""The power package's exceptions (the tree is drawn in :mod:`fleetmind.power`)."""

from __future__ import annotations


class PowerError(Exception):
    """Anything the power package refuses or fails to do; the message says what and why."""


class InventoryReadError(PowerError):
    """The inventory cannot be read, is not YAML, or is not shaped like an Ansible inventory."""


class UnknownNodeError(PowerError):
    """The named node is not in the inventory."""


class WakeError(PowerError):
    """A node cannot be woken: no MAC address known, no address for a directed broadcast, or the send failed."""
