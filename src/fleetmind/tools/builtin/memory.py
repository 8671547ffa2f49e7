"""``memory``: remember a fact or recall what is known about something, in the agent's long-term memory.

It uses the context's :class:`~fleetmind.memory.long_term.LongTermMemory` when the agent hands its own store in,
else opens one in ``memory_dir`` embedding through ``embeddings_url`` (llama-server with all-MiniLM-L6-v2).
Recalled text is data, not instructions: the runner hands it back to the model as a tool result like any other.
"""

from __future__ import annotations

import threading
from typing import Any

from fleetmind.tools.base import ToolCall, ToolContext, tool
from fleetmind.tools.errors import ToolExecutionError

_open_lock = threading.Lock()


def memory_store(ctx: ToolContext) -> Any:
    if ctx.memory is not None:
        return ctx.memory
    with _open_lock:
        store = ctx.extra.get("memory_store")
        if store is None:
            if not ctx.embeddings_url or ctx.memory_dir is None:
                raise ToolExecutionError(
                    "memory is not configured: set FLEETMIND_TOOLS_EMBEDDINGS_URL (and a state dir for the store)"
                )
            from fleetmind.llm.embeddings import LlamaEmbedder
            from fleetmind.memory.long_term import LongTermMemory

            store = LongTermMemory(ctx.memory_dir, LlamaEmbedder(ctx.embeddings_url))
            ctx.extra["memory_store"] = store
        return store


@tool(
    "memory",
    "Remember a fact for later, or recall the stored memories closest in meaning to a query.",
    {
        "type": "object",
        "properties": {
            "action": {"enum": ["remember", "recall"]},
            "text": {"type": "string", "minLength": 1, "maxLength": 8000, "description": "fact or query"},
            "k": {"type": "integer", "minimum": 1, "maximum": 50, "default": 5},
            "conversation_id": {"type": "string", "maxLength": 200},
        },
        "required": ["action", "text"],
    },
    timeout_s=60.0,
)
async def memory(call: ToolCall) -> dict[str, Any]:
    store = memory_store(call.context)
    text = call.args["text"]
    try:
        if call.args["action"] == "remember":
            memory_id = await store.add(text, conversation_id=call.args.get("conversation_id"))
            return {"remembered": text, "id": memory_id, "total": len(store)}
        hits = await store.search(text, k=int(call.args.get("k", 5)))
    except ToolExecutionError:
        raise
    except Exception as exc:  # the embedder's errors (server down ...) reach the model as a clear failure
        raise ToolExecutionError(f"memory {call.args['action']} failed: {type(exc).__name__}: {exc}") from None
    return {"query": text, "memories": [{"id": h.id, "text": h.text, "score": round(float(h.score), 4)} for h in hits]}
