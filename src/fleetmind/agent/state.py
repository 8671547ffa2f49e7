"""The agent's saved state as one file: conversations, long-term memory and settings, for Mission Control.

The file is one JSON document (``format``/``version`` first, so a wrong file is refused with a clear message):
the short-term history of every conversation with its owner, every long-term memory with its vector (float32,
base64), and the settings the agent ran with. Loading replaces history and memory wholesale and applies the settings
that can change while the agent runs (the default expert and the request time limit); the others (experts,
workflow, embeddings) are recorded for the reader and take effect only through the environment on the next start.

A state is everyone's (an admin's save and load) or one owner's (an API key id: any other key). One owner's file
holds only that owner's conversations and memories; loading it replaces only that owner's, makes everything in it
that owner's whatever the file says, and leaves the settings alone. Version 1 files (conversations keyed by id,
without owners) still load. Anything malformed, however deep or odd, is a :class:`StateFormatError` (a 400 on the
wire) and changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from fleetmind.agent import AgentError
from fleetmind.contracts.names import ANY_OWNER
from fleetmind.contracts.protocol import ChatMessage
from fleetmind.memory.short_term import ConversationHistory

if TYPE_CHECKING:
    from fleetmind.agent.runtime import AgentRuntime

STATE_FORMAT = "fleetmind-agent-state"
STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)
LIVE_SETTINGS = ("default_expert", "request_timeout_s")


class StateFormatError(AgentError, ValueError):
    """A state file that is not ours, of another version, or inconsistent."""

    code = "invalid_request"


def export_state(runtime: AgentRuntime, *, owner: str | None = ANY_OWNER) -> bytes:
    """Everyone's state (default), or ``owner``'s conversations and memories only."""
    memory: dict[str, Any] | None = None
    if runtime.memory is not None:
        records, vectors = runtime.memory.dump(owner=owner)
        memory = {
            "dim": runtime.memory.dim,
            "records": records,
            "vectors": base64.b64encode(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).decode("ascii"),
        }
    doc = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "saved_at": time.time(),
        "owner": owner,
        # one owner's settings are everyone's: only a whole state carries them
        "settings": runtime.settings.model_dump(mode="json") if owner == ANY_OWNER else {},
        "conversations": runtime.history.entries(owner=owner),
        "memory": memory,
    }
    return json.dumps(doc).encode("utf-8")


Conversation = tuple[str | None, str, str, list[ChatMessage]]


def _conversations(raw: Any, version: int, owner: str | None) -> list[Conversation]:
    """(owner, id, summary, messages) per conversation; an owner's load makes them all that owner's."""
    if version == 1:
        if not isinstance(raw, dict):
            raise StateFormatError("conversations must be an object")
        items = [{"id": cid, "owner": None, "messages": msgs} for cid, msgs in raw.items()]
    elif isinstance(raw, list):
        items = raw
    else:
        raise StateFormatError("conversations must be a list")
    out: list[Conversation] = []
    for item in items:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("id"), str)
            or not isinstance(item.get("messages"), list)
        ):
            raise StateFormatError("each conversation needs an id and a list of messages")
        item_owner = item.get("owner")
        if item_owner is not None and not isinstance(item_owner, str):
            raise StateFormatError("a conversation's owner must be a string or null")
        summary, messages = ConversationHistory.parse(item["messages"])
        out.append((item_owner if owner == ANY_OWNER else owner, item["id"], summary, messages))
    return out


def _memory(runtime: AgentRuntime, memory: Any) -> tuple[list[dict[str, Any]], np.ndarray] | None:
    if memory is None:
        return None
    if runtime.memory is None:
        raise StateFormatError("the state holds long-term memory but this agent runs without embeddings")
    if not isinstance(memory, dict) or memory.get("dim") != runtime.memory.dim:
        got = memory.get("dim") if isinstance(memory, dict) else None
        raise StateFormatError(f"memory of dimension {got} does not fit {runtime.memory.dim}")
    records, encoded = memory.get("records"), memory.get("vectors")
    if not isinstance(records, list) or not isinstance(encoded, str):
        raise StateFormatError("memory needs a list of records and base64 vectors")
    if not all(isinstance(r, dict) and isinstance(r.get("text"), str) for r in records):
        raise StateFormatError("each memory record needs a text")
    raw = base64.b64decode(encoded, validate=True)
    if len(raw) % (4 * runtime.memory.dim):
        raise StateFormatError("memory vectors are not whole rows")
    vectors = np.frombuffer(raw, dtype="<f4").reshape(-1, runtime.memory.dim)
    if len(vectors) != len(records):
        raise StateFormatError("saved memory has a different number of texts and vectors")
    return list(records), vectors


def import_state(runtime: AgentRuntime, data: bytes, *, owner: str | None = ANY_OWNER) -> None:
    """Load a saved state: everyone's (default), or into ``owner``'s part only."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
            raise StateFormatError("not an agent state file")
        version = doc.get("version")
        if version not in READABLE_VERSIONS:
            raise StateFormatError(f"agent state version {version!r} is not supported (expected 1 or 2)")
        # Validate everything before changing anything.
        restored = _memory(runtime, doc.get("memory"))
        conversations = _conversations(doc.get("conversations") or [], version, owner)
        settings = doc.get("settings") or {}
        if not isinstance(settings, dict):
            raise StateFormatError("settings must be an object")
    except StateFormatError:
        raise
    except RecursionError:
        raise StateFormatError("the state file is nested too deeply") from None
    except UnicodeDecodeError:
        raise StateFormatError("the state file is not UTF-8 text") from None
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        # json's and pydantic's errors are ValueErrors; the rest is a field of the wrong type
        raise StateFormatError(f"not a valid agent state file: {type(exc).__name__}: {str(exc)[:300]}") from None
    runtime.history.replace(conversations, owner=owner)
    if restored is not None and runtime.memory is not None:
        if owner == ANY_OWNER:
            runtime.memory.replace_all(*restored)
        else:
            runtime.memory.replace_owned(owner, *restored)
    live = {k: settings[k] for k in LIVE_SETTINGS if k in settings}
    if live and owner == ANY_OWNER:
        runtime.apply_live_settings(**live)
