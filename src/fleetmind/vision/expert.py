"""Handing an image to a multimodal expert: the OpenAI-style request, the call, and finding the expert.

A vision expert is any OpenAI-compatible chat server whose model takes images (llama-server with a
multimodal model and its ``--mmproj``, vLLM, ...), registered like every expert but tagged ``expert:vision``.
The image travels inline as a ``data:`` URI in an ``image_url`` content part, the form those servers accept,
so nothing needs to be reachable from the expert but the request itself.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import httpx

from fleetmind.llm.chat import ExpertError, complete_sync
from fleetmind.vision import VisionExpertError

if TYPE_CHECKING:
    from fleetmind.agent.experts import ExpertDirectory

VISION_EXPERT = "vision"
DEFAULT_PROMPT = (
    "Describe this image in one or two sentences: what is in it, where, and anything unusual. "
    "Say only what you can see."
)

_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
]


def image_mime(image: bytes) -> str:
    """The image's media type from its first bytes (PNG, JPEG, GIF, WebP, BMP; else octet-stream)."""
    if image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        return "image/webp"
    for magic, mime in _MAGIC:
        if image.startswith(magic):
            return mime
    return "application/octet-stream"


def build_expert_request(
    image: bytes, *, prompt: str = DEFAULT_PROMPT, model: str = VISION_EXPERT, max_tokens: int = 200
) -> dict[str, Any]:
    """The ``/v1/chat/completions`` body that shows ``image`` to the expert with ``prompt``."""
    if not image:
        raise ValueError("empty image")
    data_uri = f"data:{image_mime(image)};base64,{base64.b64encode(image).decode('ascii')}"
    return {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt},
                    {"type": "image_url", "image_url": {"url": data_uri}},
                ],
            }
        ],
        "max_tokens": max_tokens,
        "temperature": 0.2,
        "stream": False,
    }


def describe_with_expert(
    image: bytes,
    expert_url: str,
    *,
    prompt: str = DEFAULT_PROMPT,
    model: str = VISION_EXPERT,
    timeout_s: float = 60.0,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """The expert's description of ``image``: ``{"source": "expert", "expert", "summary", "usage"}``.

    Raises :class:`~fleetmind.vision.VisionExpertError` when the expert cannot be reached, refuses the image
    (a text-only model does) or answers without text.
    """
    body = build_expert_request(image, prompt=prompt, model=model)
    try:
        # experts take the stack's service secret as their API key (security/service.py)
        reply = complete_sync(
            expert_url,
            body["messages"],
            timeout_s=timeout_s,
            transport=transport,
            model=model,
            max_tokens=body["max_tokens"],
            temperature=body["temperature"],
        )
    except ExpertError as exc:
        raise VisionExpertError(f"vision expert: {exc}") from exc
    text = reply.text
    if not text.strip():
        raise VisionExpertError("vision expert answered without text")
    return {"source": "expert", "expert": expert_url, "summary": text.strip(), "usage": reply.usage.model_dump()}


async def find_vision_expert(directory: ExpertDirectory) -> str | None:
    """The URL of a healthy expert registered as ``expert:vision``, if there is one."""
    for expert in await directory.experts():
        if expert.name == VISION_EXPERT and directory.is_healthy(expert):
            return expert.url
    return None
