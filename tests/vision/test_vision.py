"""Vision: OpenCV's packaged detectors on synthetic images, and the request a multimodal expert gets."""

from __future__ import annotations

import base64
import json

import cv2
import httpx
import numpy as np
import pytest

from fleetmind.agent.experts import ExpertDirectory
from fleetmind.vision import (
    ImageDecodeError,
    build_expert_request,
    describe,
    describe_with_expert,
    find_vision_expert,
)


def png(pixels: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", pixels)
    assert ok
    return data.tobytes()


def shapes_image() -> np.ndarray:
    """White canvas (BGR): a red circle on the left, a blue rectangle on the right, a green triangle below."""
    img = np.full((480, 640, 3), 255, np.uint8)
    cv2.circle(img, (120, 150), 70, (30, 30, 220), -1)
    cv2.rectangle(img, (420, 80), (600, 200), (220, 60, 30), -1)
    cv2.fillPoly(img, [np.array([[320, 300], [240, 440], [400, 440]], np.int32)], (60, 170, 40))
    return img


def test_shapes_colours_and_measurements_of_a_drawing() -> None:
    result = describe(png(shapes_image()))

    assert (result["width"], result["height"]) == (640, 480)
    assert result["source"] == "opencv"
    assert result["lighting"] == "bright"
    assert result["colours"][0]["name"] == "white"
    assert {"red", "blue", "green"} <= {c["name"] for c in result["colours"]}
    found = {(s["shape"], s["colour"]) for s in result["shapes"]}
    assert ("circle", "red") in found
    assert ("rectangle", "blue") in found
    assert ("triangle", "green") in found
    circle = next(s for s in result["shapes"] if s["shape"] == "circle")
    assert circle["position"].endswith("left")
    x, _, w, _ = circle["box"]
    assert abs(x - 50) <= 4 and abs(w - 141) <= 6
    assert result["faces"] == []  # a drawing of shapes has no face in it
    assert "red circle" in result["summary"] and "no faces" in result["summary"]
    json.dumps(result)  # the tool hands it on as JSON


def test_dark_and_blurry_images_are_called_so() -> None:
    dark = describe(png(np.full((100, 100, 3), 20, np.uint8)))
    assert dark["lighting"] == "dark" and dark["shapes"] == [] and dark["blurry"] is False

    board = np.kron((np.indices((16, 16)).sum(axis=0) % 2) * 255, np.ones((16, 16))).astype(np.uint8)
    sharp = cv2.cvtColor(board, cv2.COLOR_GRAY2BGR)
    soft = cv2.GaussianBlur(sharp, (0, 0), 5)
    assert describe(png(sharp))["blurry"] is False
    assert describe(png(soft))["blurry"] is True
    assert describe(png(sharp))["edge_density"] > describe(png(soft))["edge_density"]


def test_large_images_keep_their_true_size_and_boxes() -> None:
    big = cv2.resize(shapes_image(), (2560, 1920), interpolation=cv2.INTER_NEAREST)
    result = describe(png(big))
    assert (result["width"], result["height"]) == (2560, 1920)
    circle = next(s for s in result["shapes"] if s["shape"] == "circle")
    assert abs(circle["box"][2] - 564) <= 24  # boxes are in the original's pixels


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n broken"])
def test_bytes_that_are_not_an_image(data: bytes) -> None:
    with pytest.raises(ImageDecodeError):
        describe(data)
    with pytest.raises(ValueError):  # ImageDecodeError is also a ValueError for callers that check that
        describe(data)


def test_the_expert_request_carries_the_image_as_a_data_uri() -> None:
    image = png(shapes_image())
    body = build_expert_request(image, prompt="What is this?", model="vision", max_tokens=50)

    assert body["model"] == "vision" and body["max_tokens"] == 50 and body["stream"] is False
    (message,) = body["messages"]
    assert message["role"] == "user"
    text, picture = message["content"]
    assert text == {"type": "text", "text": "What is this?"}
    assert picture["type"] == "image_url"
    head, _, payload = picture["image_url"]["url"].partition(",")
    assert head == "data:image/png;base64"
    assert base64.b64decode(payload) == image
    jpeg = cv2.imencode(".jpg", shapes_image())[1].tobytes()
    assert build_expert_request(jpeg)["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/jpeg")


def test_expert_answer_becomes_the_summary() -> None:
    # No multimodal model can run here, so the expert's side is a canned chat completion.
    seen: list[httpx.Request] = []

    def expert(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        reply = {"choices": [{"message": {"role": "assistant", "content": " A red ball and a blue box. "}}]}
        return httpx.Response(200, json=reply)

    image = png(shapes_image())
    result = describe_with_expert(image, "http://vision.test:8080/", transport=httpx.MockTransport(expert))
    assert result["summary"] == "A red ball and a blue box." and result["source"] == "expert"
    (request,) = seen
    assert request.url == "http://vision.test:8080/v1/chat/completions"
    assert json.loads(request.content) == build_expert_request(image)


def test_a_text_only_expert_leaves_the_opencv_answer(llama_server_url: str) -> None:
    # A real llama-server without a vision projector refuses images: the OpenCV description stands.
    result = describe(png(shapes_image()), expert_url=llama_server_url)
    assert result["source"] == "opencv"
    assert "answered HTTP" in result["expert_error"] and "image input is not supported" in result["expert_error"]
    assert "red circle" in result["summary"]


async def test_vision_expert_is_found_by_name(llama_server_url: str) -> None:
    with_vision = ExpertDirectory(fixed={"general": llama_server_url, "vision": "http://127.0.0.1:9/"})
    assert await find_vision_expert(with_vision) == "http://127.0.0.1:9/"
    assert await find_vision_expert(ExpertDirectory(fixed={"general": llama_server_url})) is None


async def test_describe_route_needs_a_key_and_answers_json(tmp_path) -> None:
    from fleetmind.agent.runtime import AgentRuntime
    from fleetmind.agent.settings import AgentSettings
    from fleetmind.apps.agent_process import create_app, detach_logging
    from fleetmind.config import Settings
    from fleetmind.security import KeyStore

    settings = Settings(state_dir=tmp_path)
    # the route as Mission Control serves it (the runtime is not started: no expert is asked)
    app = create_app(settings, AgentRuntime(settings=AgentSettings(experts="general=http://127.0.0.1:9")))
    key, _ = KeyStore(settings.keys_file).create("vision-test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mc") as http:
        denied = await http.post("/api/vision/describe", content=png(shapes_image()))
        bad = await http.post("/api/vision/describe", content=b"junk", headers={"Authorization": f"Bearer {key}"})
        ok = await http.post(
            "/api/vision/describe", content=png(shapes_image()), headers={"Authorization": f"Bearer {key}"}
        )
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_image"
    detach_logging(app)
    assert ok.status_code == 200 and "red circle" in ok.json()["summary"]
