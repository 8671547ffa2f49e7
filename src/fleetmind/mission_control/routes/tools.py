"""Tools from the page: ``GET /api/tools``, ``POST /api/tools/{name}/run``, ``GET /api/tools/runs[/{id}]``.

A person runs a tool through the same runner the agent uses, so the same gates apply: argument schema, policy,
approval for risky tools (the run waits in ``/api/approvals`` and shows as ``running``), timeout and audit. A
run answers 202 at once with its id; its outcome arrives as a ``tool_run_finished`` event and in
``/api/tools/runs/{id}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from fleetmind.mission_control.deps import OperatorDep, ToolRunsDep, ToolsDep
from fleetmind.mission_control.errors import AUTH, ApiError, error_responses

router = APIRouter(tags=["tools"])


class RunRequest(BaseModel):
    arguments: dict[str, Any] = Field(default_factory=dict)


@router.get("/api/tools", responses=error_responses(*AUTH))
async def list_tools(runner: ToolsDep, _auth: OperatorDep) -> dict[str, Any]:
    return {
        "tools": [
            {
                "name": s.name,
                "description": s.description,
                "risk": s.risk,
                "timeout_s": s.timeout_s,
                "parameters": s.parameters,
            }
            for s in runner.specs()
        ]
    }


@router.post("/api/tools/{name}/run", status_code=202, responses=error_responses(*AUTH, 400, 404, 413, 422))
async def run_tool(
    name: str, body: RunRequest, runner: ToolsDep, runs: ToolRunsDep, caller: OperatorDep
) -> JSONResponse:
    if name not in {s.name for s in runner.specs()}:
        raise ApiError(404, f"no tool named {name!r}", code="unknown_tool", param="name")
    run = runs.start(name, body.arguments, requester=f"{caller.name} via Mission Control", requester_key=caller.key_id)
    return JSONResponse(run.to_dict(), status_code=202)


@router.get("/api/tools/runs", responses=error_responses(*AUTH))
async def list_runs(runs: ToolRunsDep, _auth: OperatorDep) -> dict[str, Any]:
    return {"runs": [r.to_dict() for r in runs.recent()]}


@router.get("/api/tools/runs/{run_id}", responses=error_responses(*AUTH, 404, 422))
async def get_run(run_id: str, runs: ToolRunsDep, _auth: OperatorDep) -> dict[str, Any]:
    run = runs.get(run_id)
    if run is None:
        raise ApiError(404, "no such tool run", code="run_not_found")
    return run.to_dict()
