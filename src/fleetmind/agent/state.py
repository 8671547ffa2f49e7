"""The agent's saved state as one file: conversations, long-term memory and settings, for Mission Control.

The file is one JSON document (``format``/``version`` first, so a wrong file is refused with a clear message):
the short-term history of every conversation, every long-term memory with its vector (float32, base64), and the
settings the agent ran with. Loading replaces history and memory wholesale and applies the settings that can
change while the agent runs (the default expert and the request time limit); the others (experts, workflow,
embeddings) are recorded for the reader and take effect only through the environment on the next start.
"""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from fleetmind.agent import AgentError

if TYPE_CHECKING:
    from fleetmind.agent.runtime import AgentRuntime

STATE_FORMAT = "fleetmind-agent-state"
STATE_VERSION = 1
LIVE_SETTINGS = ("default_expert", "request_timeout_s")


class StateFormatError(AgentError, ValueError):
    """A state file that is not ours, of another version, or inconsistent."""

    code = "invalid_request"


def export_state(runtime: AgentRuntime) -> bytes:
    memory: dict[str, Any] | None = None
    if runtime.memory is not None:
        records, vectors = runtime.memory.dump()
        memory = {
            "dim": runtime.memory.dim,
            "records": records,
            "vectors": base64.b64encode(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).decode("ascii"),
        }
    doc = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "saved_at": time.time(),
        "settings": runtime.settings.model_dump(mode="json"),
        "conversations": runtime.history.dump(),
        "memory": memory,
    }
    return json.dumps(doc).encode("utf-8")


def import_state(runtime: AgentRuntime, data: bytes) -> None:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise StateFormatError("not an agent state file: not JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise StateFormatError("not an agent state file")
    if doc.get("version") != STATE_VERSION:
        raise StateFormatError(f"agent state version {doc.get('version')!r} is not supported (expected 1)")
    memory = doc.get("memory")
    restored: tuple[list[dict[str, Any]], np.ndarray] | None = None
    if memory is not None:
        if runtime.memory is None:
            raise StateFormatError("the state holds long-term memory but this agent runs without embeddings")
        if memory.get("dim") != runtime.memory.dim:
            raise StateFormatError(f"memory of dimension {memory.get('dim')} does not fit {runtime.memory.dim}")
        vectors = np.frombuffer(base64.b64decode(memory["vectors"]), dtype="<f4").reshape(-1, runtime.memory.dim)
        restored = (list(memory["records"]), vectors)
    # Validate everything before changing anything.
    conversations = doc.get("conversations") or {}
    if not isinstance(conversations, dict):
        raise StateFormatError("conversations must be an object")
    runtime.history.restore(conversations)
    if restored is not None and runtime.memory is not None:
        runtime.memory.replace_all(*restored)
    settings = doc.get("settings") or {}
    live = {k: settings[k] for k in LIVE_SETTINGS if k in settings}
    if live:
        runtime.apply_live_settings(**live)
