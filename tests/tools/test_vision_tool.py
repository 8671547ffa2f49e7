"""vision describes a real image through fleetmind.vision (OpenCV), and names the module when it cannot load."""

from __future__ import annotations

import base64
import sys

import pytest

from fleetmind.tools.base import ToolContext
from fleetmind.tools.runner import ToolRunner

from .conftest import run_ok

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


async def test_without_the_vision_module_the_error_names_it(
    runner: ToolRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "fleetmind.vision", None)  # what an absent package looks like to import
    outcome = await runner.run("vision", {"image_base64": base64.b64encode(PNG_1PX).decode()}, requester="t")
    assert outcome.status == "error" and "fleetmind.vision" in (outcome.error or "")


async def test_the_tool_sees_a_drawing(runner: ToolRunner, context: ToolContext) -> None:
    import cv2
    import numpy as np

    img = np.full((240, 320, 3), 255, np.uint8)
    cv2.circle(img, (100, 120), 60, (30, 30, 220), -1)  # a red disc (BGR)
    ok, data = cv2.imencode(".png", img)
    assert ok
    (context.workspace / "disc.png").write_bytes(data.tobytes())
    out = await run_ok(runner, "vision", {"path": "disc.png"})
    assert (out["width"], out["height"]) == (320, 240) and "red circle" in out["summary"]
    again = await run_ok(runner, "vision", {"image_base64": base64.b64encode(data.tobytes()).decode()})
    assert again["summary"] == out["summary"]
    outside = await runner.run("vision", {"path": "../../etc/hostname"}, requester="t")
    assert outside.status == "refused"
    both = await runner.run("vision", {"path": "a", "image_base64": "b"}, requester="t")
    assert both.status == "invalid_arguments"
    junk = await runner.run("vision", {"image_base64": base64.b64encode(b"not an image").decode()}, requester="t")
    assert junk.status == "error"
