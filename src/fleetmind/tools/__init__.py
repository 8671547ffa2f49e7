"""The agent's hands: tools with JSON-schema arguments, risk levels, approval gates, an audit log and a sandbox.

A tool (:class:`~fleetmind.tools.base.Tool`) declares its name, a JSON schema of its arguments, a risk level and a
timeout. Built-in tools are registered through the ``fleetmind.tools`` entry-point group, the same way a user's
plugin is (or through a plugin directory, see :mod:`fleetmind.tools.registry`).
:class:`~fleetmind.tools.runner.ToolRunner` is the one gate every call goes through: parse and validate arguments,
ask the :class:`~fleetmind.tools.policy.Policy` (run, wait for a person through
:class:`~fleetmind.tools.approvals.ApprovalBroker`, or refuse), run with a timeout, and append one line to the audit
log (:mod:`fleetmind.tools.audit`).

Errors::

    ToolError                      anything this package raises
    ├── UnknownToolError           no tool of that name is registered
    ├── ToolArgumentsError         arguments are not JSON or do not match the tool's schema
    ├── ToolRefusedError           a tool refuses this call (a path outside the workspace, a host not allowed)
    ├── ToolExecutionError         the tool ran and failed (a clear message for the model)
    │   └── SandboxError           code_runner could not set up or run its sandbox
    ├── ToolRegistrationError      a plugin or entry point does not provide a valid tool
    ├── ApprovalNotFoundError      an approval id that is unknown or already decided
    └── SelfApprovalError          an approval by the key that asked, without the request's one-time code
"""

from __future__ import annotations

from fleetmind.tools.errors import (
    ApprovalNotFoundError,
    SandboxError,
    SelfApprovalError,
    ToolArgumentsError,
    ToolError,
    ToolExecutionError,
    ToolRefusedError,
    ToolRegistrationError,
    UnknownToolError,
)

__all__ = [
    "ApprovalNotFoundError",
    "SandboxError",
    "SelfApprovalError",
    "ToolArgumentsError",
    "ToolError",
    "ToolExecutionError",
    "ToolRefusedError",
    "ToolRegistrationError",
    "UnknownToolError",
]
