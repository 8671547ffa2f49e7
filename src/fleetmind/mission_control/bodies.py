"""Reading request bodies for Mission Control's routes: bounded in size, parsed into a model with clear errors.

:func:`read_body` stops reading as soon as a body passes its limit (413), so a huge upload is never held in memory
whole; :func:`parse_body` turns a pydantic failure into the same error FastAPI's own body validation gets
(:func:`~fleetmind.mission_control.errors.invalid_body`): 400 for JSON that does not parse, 422 naming the
first wrong field; and 400 for text that is not valid Unicode (a lone surrogate, which nothing downstream could encode).
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from fleetmind.mission_control.errors import ApiError, invalid_body
from fleetmind.security.text import unencodable_path

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, limit: int, too_large: str) -> bytes:
    """The whole body, or ApiError 413 with ``too_large`` as soon as it passes ``limit`` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, too_large, code="too_large")
    return bytes(body)


def parse_body(model: type[M], body: bytes) -> M:
    """``body`` as ``model``; ApiError 400 (not JSON) or 422 (the first invalid field) otherwise."""
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_body(exc.errors()) from None
    if (where := unencodable_path(parsed.model_dump())) is not None:
        raise ApiError(400, f"{where} holds text that is not valid Unicode", code="invalid_text", param=where)
    return parsed
