"""The agent's eyes: what an image shows, from OpenCV's packaged detectors or from a multimodal expert.

:func:`describe` (``describe(image: bytes) -> dict``; the agent's ``vision`` tool calls it) decodes an image
(PNG, JPEG, BMP, WebP ... anything OpenCV reads) and returns a structured result with a one-line ``summary``.
With ``expert_url`` (a llama-server or any OpenAI-compatible server with a vision model, registered with the tag
``expert:vision``; :func:`find_vision_expert` looks it up) the image also goes to that model as an
``image_url`` data URI and its answer becomes the summary; if it fails, the OpenCV result stands.

What it can see, honestly. Without a vision expert this is classical computer vision, no neural network:

* measured facts, reliable: size, brightness and contrast, sharpness (blur), edge density, the dominant
  colours (k-means) named after the nearest of a dozen basic colours;
* simple flat shapes on a plain background (triangles, rectangles/squares, circles, other polygons), with their
  colour and position — the kind of thing a drawing or a diagram has; on a photo this finds outlines, not objects;
* faces, eyes and human bodies with OpenCV's bundled Haar cascades (Viola-Jones, 2001): upright, frontal,
  reasonably lit faces of some 30+ pixels; they miss profiles, small or tilted faces and people in odd
  poses, and they find faces in patterns that are not faces. A detection is a hint, never an identification.

It cannot: name objects, animals or places, read text (no OCR), tell who a person is, estimate age or mood,
understand a scene, or count anything but the shapes, faces and bodies above. Anything like that needs a
multimodal expert.

Exceptions::

    VisionError (RuntimeError)             base of this package's errors
      +-- ImageDecodeError (ValueError)    the bytes are not an image OpenCV can read
      +-- VisionExpertError                the multimodal expert failed or answered nonsense
"""

from __future__ import annotations


class VisionError(RuntimeError):
    """Base class of this package's errors."""


class ImageDecodeError(VisionError, ValueError):
    """The bytes are not an image OpenCV can decode."""


class VisionExpertError(VisionError):
    """The multimodal expert could not describe the image."""


from fleetmind.vision.expert import build_expert_request, describe_with_expert, find_vision_expert  # noqa: E402
from fleetmind.vision.opencv import describe  # noqa: E402  (the errors above must exist first)

__all__ = [
    "ImageDecodeError",
    "VisionError",
    "VisionExpertError",
    "build_expert_request",
    "describe",
    "describe_with_expert",
    "find_vision_expert",
]
