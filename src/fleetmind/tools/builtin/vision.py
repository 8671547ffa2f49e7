"""``vision``: describe an image from the workspace (or sent as base64) with :func:`fleetmind.vision.describe`.

OpenCV is imported on the first call, not when the tools are discovered; should it be missing, the tool says
which module could not be loaded, so the model and the person reading the audit log know why it cannot see.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import importlib
from typing import Any

from fleetmind.tools.base import ToolCall, tool
from fleetmind.tools.builtin.files import workspace_path
from fleetmind.tools.errors import ToolArgumentsError, ToolExecutionError

MAX_IMAGE = 20 * 1024 * 1024


@tool(
    "vision",
    "Describe an image (a file in the workspace, or base64 bytes): size, light, colours, shapes, faces, a summary.",
    {
        "type": "object",
        "properties": {
            "path": {"type": "string", "maxLength": 1024},
            "image_base64": {"type": "string", "maxLength": 4 * MAX_IMAGE // 3 + 4},
        },
        "oneOf": [{"required": ["path"]}, {"required": ["image_base64"]}],
    },
    timeout_s=120.0,
)
async def vision(call: ToolCall) -> dict[str, Any]:
    try:
        module = importlib.import_module("fleetmind.vision")
        describe = module.describe
    except (ImportError, AttributeError) as exc:
        raise ToolExecutionError(
            f"vision is not available: the module fleetmind.vision (with describe(image: bytes) -> dict) could not "
            f"be loaded ({type(exc).__name__}: {exc})"
        ) from None
    if "path" in call.args:
        path = workspace_path(call.context, call.args["path"])
        if not path.is_file():
            raise ToolExecutionError(f"no image {call.args['path']!r} in the workspace")
        if path.stat().st_size > MAX_IMAGE:
            raise ToolExecutionError(f"image larger than {MAX_IMAGE} bytes")
        image = path.read_bytes()
    else:
        try:
            image = base64.b64decode(call.args["image_base64"], validate=True)
        except binascii.Error as exc:
            raise ToolArgumentsError(f"image_base64 is not base64: {exc}") from None
    result = await asyncio.to_thread(describe, image)
    if not isinstance(result, dict):
        raise ToolExecutionError(f"fleetmind.vision.describe returned {type(result).__name__}, expected dict")
    return result
