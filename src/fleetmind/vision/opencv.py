"""``describe(image)``: what OpenCV's packaged detectors and a few measurements say about an image.

Everything here ships with ``opencv-python-headless`` (the Haar cascades live in ``cv2.data.haarcascades``), so
it runs offline on any CPU in tens of milliseconds. The limits of what it can see are in the package docstring
(:mod:`fleetmind.vision`); the summary only claims what the measurements support.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fleetmind.vision import ImageDecodeError, VisionExpertError

log = logging.getLogger(__name__)

# Larger images are scaled down first: detection quality barely changes, the time does.
_MAX_SIDE = 1024
_MAX_SHAPES = 10
_KERNEL = np.ones((3, 3), np.uint8)
_PALETTE: dict[str, tuple[int, int, int]] = {  # RGB
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "grey": (128, 128, 128),
    "red": (220, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (240, 220, 30),
    "green": (40, 170, 60),
    "cyan": (0, 200, 220),
    "blue": (30, 60, 220),
    "purple": (130, 50, 170),
    "pink": (250, 150, 190),
    "brown": (130, 80, 40),
}


def colour_name(rgb: tuple[int, int, int]) -> str:
    """The nearest basic colour name (Euclidean in RGB; coarse, but stable)."""
    r, g, b = rgb
    return min(
        _PALETTE, key=lambda n: (r - _PALETTE[n][0]) ** 2 + (g - _PALETTE[n][1]) ** 2 + (b - _PALETTE[n][2]) ** 2
    )


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@lru_cache
def _cascade(name: str) -> cv2.CascadeClassifier:
    path = Path(cv2.__file__).parent / "data" / name  # what cv2.data.haarcascades names
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise ImageDecodeError(f"OpenCV's cascade {name} did not load from {path}")
    return cascade


def decode(image: bytes) -> np.ndarray:
    """BGR pixels of ``image`` (any format OpenCV reads), scaled so the longer side is at most 1024."""
    if not image:
        raise ImageDecodeError("empty image")
    pixels = cv2.imdecode(np.frombuffer(image, dtype=np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ImageDecodeError("not an image OpenCV can read (PNG, JPEG, BMP, WebP, TIFF ... are)")
    return pixels


def _scaled(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    h, w = pixels.shape[:2]
    scale = min(1.0, _MAX_SIDE / max(h, w))
    if scale < 1.0:
        pixels = cv2.resize(pixels, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return pixels, scale


def dominant_colours(pixels: np.ndarray, k: int = 4) -> list[dict[str, Any]]:
    """The ``k`` main colours (k-means on a 64x64 thumbnail), largest share first; similar names merged."""
    small = cv2.resize(pixels, (64, 64), interpolation=cv2.INTER_AREA).reshape(-1, 3).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    cv2.setRNGSeed(0)  # the same image gives the same answer
    start = np.zeros((small.shape[0], 1), np.int32)  # unused with KMEANS_PP_CENTERS, but the API wants one
    _, labels, centres = cv2.kmeans(small, k, start, criteria, 3, cv2.KMEANS_PP_CENTERS)
    counts = np.bincount(labels.ravel(), minlength=k)
    merged: dict[str, dict[str, Any]] = {}
    for i in np.argsort(-counts):
        b, g, r = (int(np.rint(v)) for v in centres[i])
        name = colour_name((r, g, b))
        share = float(counts[i]) / len(labels)
        if name in merged:
            merged[name]["share"] += share
        else:
            merged[name] = {"name": name, "hex": _hex((r, g, b)), "share": share}
    out = sorted(merged.values(), key=lambda c: -c["share"])
    for c in out:
        c["share"] = round(c["share"], 3)
    return [c for c in out if c["share"] >= 0.02]


def _shape_name(contour: np.ndarray) -> str:
    perimeter = cv2.arcLength(contour, True)
    approx = cv2.approxPolyDP(contour, 0.03 * perimeter, True)
    area = cv2.contourArea(contour)
    circularity = 4 * np.pi * area / (perimeter * perimeter) if perimeter else 0.0
    if len(approx) == 3:
        return "triangle"
    if len(approx) == 4:
        _, _, w, h = cv2.boundingRect(approx)
        return "square" if 0.9 <= w / h <= 1.1 else "rectangle"
    if circularity > 0.85:
        return "circle"
    if circularity > 0.7 and len(approx) > 6:
        return "ellipse"
    return "polygon"


def _position(cx: float, cy: float, w: int, h: int) -> str:
    col = "left" if cx < w / 3 else "right" if cx > 2 * w / 3 else "centre"
    row = "top" if cy < h / 3 else "bottom" if cy > 2 * h / 3 else "middle"
    return "centre" if (row, col) == ("middle", "centre") else f"{row} {col}" if col != "centre" else row


def find_shapes(pixels: np.ndarray, scale: float) -> list[dict[str, Any]]:
    """Flat shapes that stand out from the background (each ≥ 0.5 % of the image), largest first."""
    h, w = pixels.shape[:2]
    gray = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    edges = cv2.dilate(cv2.Canny(cv2.GaussianBlur(gray, (5, 5), 0), 40, 120), _KERNEL, iterations=1)
    contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    shapes = []
    for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:_MAX_SHAPES]:
        area = cv2.contourArea(contour)
        if area < 0.005 * w * h or area > 0.95 * w * h:
            continue
        outline = np.zeros(gray.shape, np.uint8)
        cv2.drawContours(outline, [contour], -1, 255, thickness=cv2.FILLED)
        inside = cv2.erode(outline, _KERNEL, iterations=3)  # the colour inside, not of the outline
        b, g, r = (int(v) for v in cv2.mean(pixels, mask=inside if cv2.countNonZero(inside) else None)[:3])
        x, y, bw, bh = cv2.boundingRect(contour)
        shapes.append(
            {
                "shape": _shape_name(contour),
                "colour": colour_name((r, g, b)),
                "box": [round(v / scale) for v in (x, y, bw, bh)],
                "position": _position(x + bw / 2, y + bh / 2, w, h),
                "area_share": round(area / (w * h), 3),
            }
        )
    return shapes


def _detect(cascade: str, gray: np.ndarray, scale: float, min_side: int, neighbours: int) -> list[list[int]]:
    found = _cascade(cascade).detectMultiScale(gray, scaleFactor=1.1, minNeighbors=neighbours, minSize=(min_side,) * 2)
    return [[round(v / scale) for v in box] for box in np.asarray(found).reshape(-1, 4).tolist()]


def find_people(pixels: np.ndarray, scale: float) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """Faces (with the eyes found inside each) and whole/upper bodies, as boxes [x, y, w, h] in the original."""
    gray = cv2.equalizeHist(cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY))
    faces = []
    for x, y, w, h in _detect("haarcascade_frontalface_default.xml", gray, 1.0, 30, 5):
        roi = gray[y : y + h, x : x + w]
        eyes = _detect("haarcascade_eye.xml", roi, 1.0, max(8, w // 8), 4)
        faces.append({"box": [round(v / scale) for v in (x, y, w, h)], "eyes": len(eyes)})
    bodies = _detect("haarcascade_fullbody.xml", gray, scale, 48, 4)
    bodies += _detect("haarcascade_upperbody.xml", gray, scale, 48, 4)
    return faces, bodies


def _summary(result: dict[str, Any]) -> str:
    colours = [c["name"] for c in result["colours"][:3]]
    parts = [f"A {result['width']}x{result['height']} {result['lighting']} image, mostly {' and '.join(colours)}"]
    if result["blurry"]:
        parts[0] += " (blurry)"
    shapes = result["shapes"]
    if shapes:
        named = ", ".join(f"{s['colour']} {s['shape']} ({s['position']})" for s in shapes[:4])
        parts.append(f"{len(shapes)} shape{'s' if len(shapes) > 1 else ''}: {named}")
    faces = len(result["faces"])
    parts.append(f"{faces} face{'s' if faces != 1 else ''} detected" if faces else "no faces detected")
    if result["bodies"]:
        parts.append(f"{len(result['bodies'])} possible person/people")
    return "; ".join(parts) + "."


def describe(image: bytes, *, expert_url: str | None = None, expert_model: str = "vision") -> dict[str, Any]:
    """What ``image`` shows: measurements, colours, shapes, faces and bodies, and a one-line ``summary``.

    With ``expert_url`` the image also goes to that multimodal expert, whose answer becomes ``summary`` (the
    OpenCV line stays in ``opencv_summary``); when the expert fails, ``expert_error`` says why and the OpenCV
    summary stands. Raises :class:`~fleetmind.vision.ImageDecodeError` for bytes that are not an image.
    """
    original = decode(image)
    pixels, scale = _scaled(original)
    gray = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    brightness = float(gray.mean())
    sharpness = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    edges = cv2.Canny(gray, 100, 200)
    faces, bodies = find_people(pixels, scale)
    result: dict[str, Any] = {
        "source": "opencv",
        "width": int(original.shape[1]),
        "height": int(original.shape[0]),
        "brightness": round(brightness / 255, 3),
        "lighting": "dark"
        if brightness < 50
        else "dim"
        if brightness < 100
        else "bright"
        if brightness > 190
        else "normal",
        "contrast": round(float(gray.std()) / 128, 3),
        "sharpness": round(sharpness, 1),
        "blurry": sharpness < 20 and float(gray.std()) > 5,  # a flat image is not blurry, just flat
        "edge_density": round(float(np.count_nonzero(edges)) / edges.size, 4),
        "colours": dominant_colours(pixels),
        "shapes": find_shapes(pixels, scale),
        "faces": faces,
        "bodies": bodies,
    }
    result["summary"] = _summary(result)
    if expert_url:
        from fleetmind.vision.expert import describe_with_expert

        try:
            seen = describe_with_expert(image, expert_url, model=expert_model)
        except VisionExpertError as exc:
            log.warning("vision expert failed: %s", exc, extra={"event": "vision_expert_failed"})
            result["expert_error"] = str(exc)
        else:
            result.update(source="expert", opencv_summary=result["summary"], summary=seen["summary"])
            result["expert"] = seen["expert"]
    return result
