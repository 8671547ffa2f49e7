"""llama.cpp programs and the model catalogue: everything fleetmind needs to serve an LLM.

Exceptions::

    LlmError (RuntimeError)
      +-- BinaryMissingError   llama.cpp is not built or is broken (the message says what to run)
      +-- ModelNotFoundError   a model name or path that does not resolve (the message lists the choices)
      +-- EmbeddingError       the embedding server failed or answered something unexpected
      +-- ModelConversionError the packaged embedding model is missing or could not be converted to GGUF
"""


class LlmError(RuntimeError):
    """Base class of this package's errors."""


class BinaryMissingError(LlmError):
    """A llama.cpp program is missing or does not run."""


class ModelNotFoundError(LlmError, LookupError):
    """A model that the catalogue cannot resolve."""


class EmbeddingError(LlmError):
    """Embedding a text failed."""


class ModelConversionError(LlmError):
    """The embedding model could not be found or converted to GGUF."""
