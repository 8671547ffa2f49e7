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

__all__ = ["inline_refs", "invalid_body", "parse_body", "read_body"]

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


def invalid_body(errors: Sequence[Any]) -> ServiceError:
    """The error for a body that failed validation: 400 when it is not JSON at all (a bad request), 422 naming the
    first wrong field when it is JSON of the wrong shape (unprocessable)."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return ServiceError("the request body is not valid JSON", code="invalid_json")
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = f"{param}: {first.get('msg', 'invalid value')}" if param else str(first.get("msg", "invalid request"))
    return ServiceError(message, status_code=422, code="invalid_request", param=param)
