"""vision hands the image's bytes to fleetmind.vision.describe, and names the missing module when it is absent."""

from __future__ import annotations

import base64
import sys
import types
from typing import Any

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


async def test_image_bytes_reach_describe(
    runner: ToolRunner, context: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []

    async def describe(image: bytes) -> dict[str, Any]:
        seen.append(image)
        return {"caption": "a single pixel", "size": len(image)}

    module = types.ModuleType("fleetmind.vision")
    module.describe = describe  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fleetmind.vision", module)
    (context.workspace / "pixel.png").write_bytes(PNG_1PX)
    out = await run_ok(runner, "vision", {"path": "pixel.png"})
    assert out == {"caption": "a single pixel", "size": len(PNG_1PX)} and seen == [PNG_1PX]
    assert (await run_ok(runner, "vision", {"image_base64": base64.b64encode(PNG_1PX).decode()}))["size"] == len(
        PNG_1PX
    )
    outside = await runner.run("vision", {"path": "../../etc/hostname"}, requester="t")
    assert outside.status == "refused" and len(seen) == 2
    both = await runner.run("vision", {"path": "a", "image_base64": "b"}, requester="t")
    assert both.status == "invalid_arguments"
