"""``GET /``: Mission Control's page (static/index.html with its scripts and styles from /static, nothing inline)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["home"])

# The page's script comes from /static; nothing inline runs, nothing loads from elsewhere.
_CSP = "default-src 'self'; connect-src 'self'; style-src 'self'; frame-ancestors 'none'"


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home() -> HTMLResponse:
    page = files("fleetmind.mission_control").joinpath("static/index.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers={"Content-Security-Policy": _CSP})
