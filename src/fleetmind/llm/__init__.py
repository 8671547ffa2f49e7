"""llama.cpp programs and the model catalogue: everything fleetmind needs to serve an LLM.

Exceptions::

    LlmError (RuntimeError)
      +-- BinaryMissingError   llama.cpp is not built or is broken (the message says what to run)
      +-- ModelNotFoundError   a model name or path that does not resolve (the message lists the choices)
"""


class LlmError(RuntimeError):
    """Base class of this package's errors."""


class BinaryMissingError(LlmError):
    """A llama.cpp program is missing or does not run."""


class ModelNotFoundError(LlmError, LookupError):
    """A model that the catalogue cannot resolve."""
