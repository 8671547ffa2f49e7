"""Nomad HTTP API subset served by the embedded orchestrator (the routes python-nomad calls for fleetmind).

Jobs: ``GET/PUT/POST /v1/jobs``, ``GET/POST/PUT/DELETE /v1/job/:id``, ``GET /v1/job/:id/allocations``, ``GET
/v1/job/:id/summary``, ``GET /v1/job/:id/evaluations``; allocations: ``GET /v1/allocations``, ``GET
/v1/allocation/:id``; evaluations: ``GET /v1/evaluations``, ``GET /v1/evaluation/:id``; the node: ``GET /v1/nodes``,
``GET /v1/node/:id``, ``GET /v1/node/:id/allocations``, ``POST /v1/node/:id/drain`` and ``POST
/v1/node/:id/eligibility`` (stop placing on it, as the power agent does before a sleep); ``PUT /v1/system/gc``
(garbage collection: the files of dead allocations go, see :mod:`.gc`; 200 with no body, as Nomad answers); ``GET
/v1/client/fs/logs/:alloc_id`` (a task's stdout/stderr, see :mod:`.logs`; what the supervisor's diagnosis reads on
both backends); plus
``/v1/status/leader``, ``/v1/status/peers`` and ``/v1/regions``. Shapes follow HashiCorp's
OpenAPI description (tests/cluster/contracts/nomad-openapi-v1.yaml); errors are plain text with Nomad's status
codes. Like Nomad with ACLs on, every route but the leader status wants the cluster token (``X-Nomad-Token``);
bodies must be JSON, and a job is checked against :mod:`.jobshape` before it is stored (400, never a crash).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from fleetmind.cluster.embedded import logs
from fleetmind.cluster.embedded.acl import TokenGate
from fleetmind.cluster.embedded.blocking import block, flag
from fleetmind.cluster.embedded.jobshape import JobShapeError, check_job
from fleetmind.cluster.embedded.orchestrator import JobInvalid, NotFound, Orchestrator
from fleetmind.http import install

RPC_PORT = 4647
OPEN_PATHS = ("/v1/status/leader", "/v1/status/peers")
# The request body as documented (for the OpenAPI description; the edge checks it with jobshape).
JOB_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"Job": {"type": "object"}}, "required": ["Job"]}
            }
        },
    }
}


DRAIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "NodeID": {"type": "string"},
                        "DrainSpec": {
                            "type": "object",
                            "nullable": True,
                            "properties": {
                                "Deadline": {"type": "integer"},
                                "IgnoreSystemJobs": {"type": "boolean"},
                            },
                        },
                        "MarkEligible": {"type": "boolean"},
                        "Meta": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                }
            }
        },
    }
}
ELIGIBILITY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"NodeID": {"type": "string"}, "Eligibility": {"type": "string"}},
                    "required": ["Eligibility"],
                }
            }
        },
    }
}


# The logs route's query (for the OpenAPI description the fuzz tests read; the handler parses it as Nomad does).
LOGS_QUERY = {
    "parameters": [
        {"name": "task", "in": "query", "schema": {"type": "string"}},
        {"name": "type", "in": "query", "schema": {"type": "string"}},
        {"name": "follow", "in": "query", "schema": {"type": "string"}},
        {"name": "offset", "in": "query", "schema": {"type": "string"}},
        {"name": "origin", "in": "query", "schema": {"type": "string"}},
        {"name": "plain", "in": "query", "schema": {"type": "string"}},
    ]
}


async def _object_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, RecursionError) as exc:
        raise JobInvalid(f"Failed to decode request body: {exc}") from None
    if not isinstance(body, dict):
        raise JobInvalid("the request body must be a JSON object")
    return body


def _node_id_matches(body: dict[str, Any], node_id: str) -> None:
    if body.get("NodeID") not in (None, "", node_id):
        raise JobInvalid("NodeID in the body does not match the path")


def _json(body: Any, index: int) -> JSONResponse:
    headers = {"X-Nomad-Index": str(index), "X-Nomad-KnownLeader": "true", "X-Nomad-LastContact": "0"}
    return JSONResponse(body, headers=headers)


def create_nomad_app(orchestrator: Orchestrator, *, token: str, advertise: str = "127.0.0.1") -> FastAPI:
    """The Nomad API app over ``orchestrator``, answering only to ``token``."""
    app = FastAPI(title="fleetmind embedded Nomad API", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(TokenGate, token=token, header="X-Nomad-Token", open_paths=OPEN_PATHS)
    install(app, allowed_hosts=[advertise], check_reads=True)
    clock = orchestrator.clock

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> Response:
        return PlainTextResponse(str(exc), status_code=404)

    @app.exception_handler(JobInvalid)
    @app.exception_handler(JobShapeError)
    async def invalid(_request: Request, exc: Exception) -> Response:
        return PlainTextResponse(str(exc), status_code=400)

    async def job_body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, RecursionError) as exc:
            raise JobInvalid(f"Failed to decode request body: {exc}") from None
        if not isinstance(body, dict) or not isinstance(body.get("Job"), dict):
            raise JobInvalid("Job must be specified")
        return check_job(body["Job"])

    @app.get("/v1/jobs")
    async def list_jobs(request: Request) -> Response:
        index = await block(request, clock)
        return _json(orchestrator.job_list(request.query_params.get("prefix", "")), index)

    @app.put("/v1/jobs", openapi_extra=JOB_BODY)
    @app.post("/v1/jobs", openapi_extra=JOB_BODY)
    async def register_jobs(request: Request) -> Response:
        result = orchestrator.register(await job_body(request))
        return _json(result, result["Index"])

    @app.get("/v1/job/{job_id}")
    async def get_job(job_id: str, request: Request) -> Response:
        index = await block(request, clock)
        return _json(orchestrator.job(job_id), index)

    @app.put("/v1/job/{job_id}", openapi_extra=JOB_BODY)
    @app.post("/v1/job/{job_id}", openapi_extra=JOB_BODY)
    async def register_job(job_id: str, request: Request) -> Response:
        job = await job_body(request)
        if job.get("ID") != job_id:
            raise JobInvalid("Job ID does not match name")
        result = orchestrator.register(job)
        return _json(result, result["Index"])

    @app.delete("/v1/job/{job_id}")
    async def deregister_job(job_id: str, request: Request) -> Response:
        result = orchestrator.deregister(job_id, purge=flag(request, "purge"))
        return _json(result, result["Index"])

    @app.get("/v1/job/{job_id}/versions")
    async def job_versions(job_id: str, request: Request) -> Response:
        index = await block(request, clock)
        return _json(orchestrator.job_versions(job_id), index)

    @app.put("/v1/job/{job_id}/revert")
    @app.post("/v1/job/{job_id}/revert")
    async def revert_job(job_id: str, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, RecursionError) as exc:
            raise JobInvalid(f"Failed to decode request body: {exc}") from None
        if not isinstance(body, dict) or not isinstance(body.get("JobVersion"), int) or body["JobVersion"] < 0:
            raise JobInvalid("JobVersion must be a non-negative integer")
        if body.get("JobID", job_id) != job_id:
            raise JobInvalid("Job ID does not match")
        prior = body.get("EnforcePriorVersion")
        if prior is not None and not isinstance(prior, int):
            raise JobInvalid("EnforcePriorVersion must be an integer")
        result = orchestrator.revert(job_id, body["JobVersion"], prior)
        return _json(result, result["Index"])

    @app.get("/v1/job/{job_id}/allocations")
    async def job_allocations(job_id: str, request: Request) -> Response:
        index = await block(request, clock)
        return _json(orchestrator.job_allocations(job_id), index)

    @app.get("/v1/job/{job_id}/summary")
    async def job_summary(job_id: str, request: Request) -> Response:
        index = await block(request, clock)
        return _json(orchestrator.job_summary(job_id), index)

    @app.get("/v1/allocations")
    async def allocations(request: Request) -> Response:
        index = await block(request, clock)
        return _json(orchestrator.allocation_list(request.query_params.get("prefix", "")), index)

    @app.get("/v1/allocation/{alloc_id}")
    async def allocation(alloc_id: str, request: Request) -> Response:
        index = await block(request, clock)
        return _json(orchestrator.allocation(alloc_id), index)

    @app.put("/v1/allocation/{alloc_id}/stop")
    @app.post("/v1/allocation/{alloc_id}/stop")
    async def stop_allocation(alloc_id: str) -> Response:
        result = orchestrator.stop_allocation(alloc_id)
        return _json(result, result["Index"])

    @app.get("/v1/client/fs/logs/{alloc_id}", openapi_extra=LOGS_QUERY)
    async def task_logs(alloc_id: str, request: Request) -> Response:
        query = logs.parse_log_query(request.query_params)
        path = orchestrator.task_log(alloc_id, query.task, query.kind)
        start, end = logs.window(path, query)
        pieces = logs.read(path, start, end)
        if query.plain:
            return StreamingResponse(pieces, media_type="text/plain")
        name = f"alloc/logs/{query.task}.{query.kind}.0"
        return StreamingResponse(logs.frames(name, start, pieces), media_type="application/json")

    @app.put("/v1/system/gc")
    async def system_gc() -> Response:
        await orchestrator.collect_garbage()
        return Response(status_code=200)

    @app.get("/v1/status/leader")
    async def leader() -> Response:
        return JSONResponse(f"{advertise}:{RPC_PORT}")

    @app.get("/v1/status/peers")
    async def peers() -> Response:
        return JSONResponse([f"{advertise}:{RPC_PORT}"])

    @app.get("/v1/regions")
    async def regions() -> Response:
        return JSONResponse([orchestrator.region])

    @app.get("/v1/nodes")
    async def nodes() -> Response:
        return _json([orchestrator.node.stub()], clock.index)

    @app.get("/v1/node/{node_id}")
    async def node(node_id: str, request: Request) -> Response:
        index = await block(request, clock)
        return _json(orchestrator.node_info(node_id), index)

    @app.get("/v1/node/{node_id}/allocations")
    async def node_allocations(node_id: str, request: Request) -> Response:
        index = await block(request, clock)
        return _json(orchestrator.node_allocations(node_id), index)

    @app.put("/v1/node/{node_id}/drain", openapi_extra=DRAIN_BODY)
    @app.post("/v1/node/{node_id}/drain", openapi_extra=DRAIN_BODY)
    async def drain(node_id: str, request: Request) -> Response:
        body = await _object_body(request)
        _node_id_matches(body, node_id)
        spec, mark, meta = body.get("DrainSpec"), body.get("MarkEligible", False), body.get("Meta")
        if spec is not None and (
            not isinstance(spec, dict)
            or not isinstance(spec.get("Deadline", 0), int)
            or not isinstance(spec.get("IgnoreSystemJobs", False), bool)
        ):
            raise JobInvalid("DrainSpec must be an object with an integer Deadline and a boolean IgnoreSystemJobs")
        if not isinstance(mark, bool):
            raise JobInvalid("MarkEligible must be a boolean")
        if meta is not None and (
            not isinstance(meta, dict) or not all(isinstance(v, str) and len(v) < 1024 for v in meta.values())
        ):
            raise JobInvalid("Meta must map names to strings")
        result = orchestrator.drain(node_id, spec, mark_eligible=mark, meta=meta)
        return _json(result, result["Index"])

    @app.put("/v1/node/{node_id}/eligibility", openapi_extra=ELIGIBILITY_BODY)
    @app.post("/v1/node/{node_id}/eligibility", openapi_extra=ELIGIBILITY_BODY)
    async def eligibility(node_id: str, request: Request) -> Response:
        body = await _object_body(request)
        _node_id_matches(body, node_id)
        value = body.get("Eligibility")
        if not isinstance(value, str):
            raise JobInvalid('Eligibility must be "eligible" or "ineligible"')
        result = orchestrator.set_eligibility(node_id, value)
        return _json(result, result["Index"])

    @app.get("/v1/evaluations")
    async def evaluations(request: Request) -> Response:
        index = await block(request, clock)
        return _json(orchestrator.evaluation_list(request.query_params.get("prefix", "")), index)

    @app.get("/v1/evaluation/{eval_id}")
    async def evaluation(eval_id: str, request: Request) -> Response:
        index = await block(request, clock)
        return _json(orchestrator.evaluation(eval_id), index)

    @app.get("/v1/job/{job_id}/evaluations")
    async def job_evaluations(job_id: str, request: Request) -> Response:
        index = await block(request, clock)
        return _json(orchestrator.job_evaluations(job_id), index)

    return app
