"""``POST /api/vision/describe``: the microphone page's "show it something" (an upload or a webcam frame).

The request body is the image's bytes (any ``Content-Type``; the bytes decide), behind an API key of any scope
(the voice page sends a chat key; describing an image is a chat turn, not an operator's act). When the agent knows
a healthy expert tagged ``expert:vision`` the image goes to it too (:func:`fleetmind.vision.describe`); the answer
is that function's dict. An unreadable image is a 400, an oversized one a 413, both in the shared error envelope.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from fleetmind.http.bodies import read_body
from fleetmind.mission_control.deps import ChatKeyDep
from fleetmind.mission_control.errors import ApiError, error_responses
from fleetmind.vision import ImageDecodeError, describe, find_vision_expert

MAX_IMAGE_BYTES = 20 * 1024 * 1024

router = APIRouter(tags=["vision"])


@router.post(
    "/api/vision/describe",
    responses=error_responses(400, 401, 413, 429),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "the image's bytes (PNG, JPEG, ...; any Content-Type, the bytes decide)",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def describe_image(request: Request, _caller: ChatKeyDep) -> dict[str, Any]:
    """What OpenCV (and a vision expert, when one is registered) sees in the image sent as the body."""
    image = await read_body(request, MAX_IMAGE_BYTES, f"image larger than {MAX_IMAGE_BYTES} bytes")
    runtime = getattr(request.app.state, "runtime", None)
    expert_url = await find_vision_expert(runtime.directory) if runtime is not None else None
    try:
        # OpenCV and the expert call block: off the event loop
        return await asyncio.to_thread(describe, image, expert_url=expert_url)
    except ImageDecodeError as exc:
        raise ApiError(400, str(exc), code="invalid_image") from None
