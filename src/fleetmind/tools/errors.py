"""The tools package's exceptions (the hierarchy is drawn in :mod:`fleetmind.tools`)."""

from __future__ import annotations


class ToolError(Exception):
    """Base of every error raised by :mod:`fleetmind.tools`."""


class UnknownToolError(ToolError):
    """No tool of that name is registered."""


class ToolArgumentsError(ToolError):
    """Arguments are not valid JSON or do not match the tool's schema; ``errors`` lists each problem."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [message]


class ToolRefusedError(ToolError):
    """The tool refuses this particular call (outside its workspace, a host not allowlisted ...)."""


class ToolExecutionError(ToolError):
    """The tool ran and failed; the message is meant for the model and the person reading the audit log."""


class SandboxError(ToolExecutionError):
    """code_runner could not set up or run its sandbox."""


class ToolRegistrationError(ToolError):
    """An entry point or plugin file does not provide a valid tool, or two tools share a name."""


class ApprovalNotFoundError(ToolError):
    """An approval id that is unknown or has already been decided."""


class SelfApprovalError(ToolError):
    """An approval of a request by the key it was made for, without that request's one-time approval code."""
