"""Request bodies for routes that read their own: bounded in size, parsed into a model with clear errors.

:func:`read_body` stops reading as soon as a body passes its limit (413), so a huge upload is never held in memory
whole; :func:`parse_body` turns a pydantic failure into the same error FastAPI's own body validation gets
(:func:`invalid_body`): 400 for JSON that does not parse, 422 naming the first wrong field; and 400 for text that
is not valid Unicode (a lone surrogate, which nothing downstream could encode). :func:`inline_refs` documents such
a body in OpenAPI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from fleetmind.http.envelope import ServiceError
from fleetmind.security.text import unencodable_path

__all__ = ["field_path", "inline_refs", "invalid_body", "parse_body", "read_body"]

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, limit: int, too_large: str) -> bytes:
    """The whole body, or a 413 with ``too_large`` as soon as it passes ``limit`` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ServiceError(too_large, status_code=413, code="too_large")
    return bytes(body)


def parse_body(model: type[M], body: bytes) -> M:
    """``body`` as ``model``; a 400 (not JSON) or 422 (the first invalid field) otherwise."""
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_body(exc.errors()) from None
    if (where := unencodable_path(parsed.model_dump())) is not None:
        raise ServiceError(f"{where} holds text that is not valid Unicode", code="invalid_text", param=where)
    return parsed


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic model's JSON schema with its ``$defs`` written in place, for a body a route documents by hand
    (``openapi_extra``): a ``#/$defs/...`` reference would point into the OpenAPI document, not this schema."""
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def field_path(loc: Sequence[int | str]) -> str | None:
    """``("body", "messages", 0, "content")`` -> ``"messages[0].content"`` (OpenAI's spelling); None for the body."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "path", "query", "header") else loc)
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or None


def invalid_body(errors: Sequence[Any], *, status: int = 422) -> ServiceError:
    """The one validation mapping of every app: 400 ``invalid_json`` for a body that is not JSON at all; else
    ``status`` (422; the gateway answers 400, as OpenAI does) with code ``invalid_value``, ``param`` naming the first
    wrong field and a message a person can act on. Never the offending value: it may be hostile and it is logged."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        reason = f" ({detail})" if detail else ""
        return ServiceError(f"The request body is not valid JSON{reason}.", code="invalid_json")
    param = field_path(first.get("loc", ()))
    if first.get("type") == "missing":
        message = f"Missing required parameter: '{param}'."
    elif param:
        message = f"Invalid value for '{param}': {first.get('msg', 'invalid value')}"
    else:
        message = str(first.get("msg", "invalid request"))
    more = len(errors) - 1
    if more > 0:
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return ServiceError(message, status_code=status, code="invalid_value", param=param)
