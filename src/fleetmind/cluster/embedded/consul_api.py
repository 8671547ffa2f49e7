"""Consul HTTP API subset served by the embedded registry (the routes py-consul calls for fleetmind).

Agent: ``PUT /v1/agent/service/register``, ``PUT /v1/agent/service/deregister/:id``, ``GET
/v1/agent/services``, ``GET /v1/agent/checks``; health: ``GET /v1/health/service/:name`` (``passing``,
repeated ``tag``); catalog: ``GET /v1/catalog/services``, ``GET /v1/catalog/service/:name``; KV:
``GET/PUT/DELETE /v1/kv/:key`` (base64 ``Value``, ``raw``, ``keys``, ``recurse``, ``cas``, ``flags``); ``GET
/v1/status/leader``. Bodies, status codes and ``X-Consul-Index`` follow Consul's API documentation. Request
keys are matched case-insensitively, as Consul does. Like Consul with ACLs on (``default_policy = "deny"``),
every route but the leader status wants the cluster token (``X-Consul-Token``); a malformed registration is a
400, never a crash.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from fleetmind.cluster.embedded.acl import TokenGate
from fleetmind.cluster.embedded.blocking import block, flag
from fleetmind.cluster.embedded.checks import PASSING
from fleetmind.cluster.embedded.consul_shape import BadRequest, check_def, service_fields
from fleetmind.cluster.embedded.registry import Check, KVEntry, Registry, Service
from fleetmind.http import install

SERVER_PORT = 8300
WEIGHTS = {"Passing": 1, "Warning": 1}
OPEN_PATHS = ("/v1/status/leader", "/v1/status/peers")
# The documented request bodies (for the OpenAPI description; the handlers check them field by field).
SERVICE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "Name": {"type": "string"},
                        "ID": {"type": "string"},
                        "Address": {"type": "string"},
                        "Port": {"type": "integer"},
                        "Tags": {"type": "array", "items": {"type": "string"}},
                        "Meta": {"type": "object", "additionalProperties": {"type": "string"}},
                        "Check": {"type": "object"},
                        "Checks": {"type": "array", "items": {"type": "object"}},
                    },
                    "required": ["Name"],
                }
            }
        },
    }
}
KV_BODY = {"requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def _json(body: Any, index: int, status_code: int = 200) -> JSONResponse:
    headers = {"X-Consul-Index": str(index), "X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0"}
    return JSONResponse(body, status_code=status_code, headers=headers)


def create_consul_app(registry: Registry, *, token: str) -> FastAPI:
    """The Consul API app over ``registry``, answering only to ``token``."""
    app = FastAPI(title="fleetmind embedded Consul API", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        TokenGate, token=token, header="X-Consul-Token", open_paths=OPEN_PATHS, raw_body_prefixes=("/v1/kv/",)
    )
    install(app, allowed_hosts=[registry.node_address], check_reads=True)
    clock = registry.clock
    node_addr = registry.node_address

    @app.exception_handler(BadRequest)
    async def bad_request(_request: Request, exc: BadRequest) -> Response:
        return PlainTextResponse(f"Invalid request: {exc}", status_code=400)

    def node() -> dict[str, Any]:
        return {
            "ID": registry.node_id,
            "Node": registry.node_name,
            "Address": node_addr,
            "Datacenter": registry.datacenter,
            "TaggedAddresses": {"lan": node_addr, "wan": node_addr},
            "Meta": {"consul-network-segment": ""},
            "CreateIndex": 1,
            "ModifyIndex": 1,
        }

    def service_json(s: Service) -> dict[str, Any]:
        return {
            "ID": s.id,
            "Service": s.name,
            "Tags": list(s.tags),
            "Address": s.address,
            "Meta": dict(s.meta),
            "Port": s.port,
            "Weights": WEIGHTS,
            "EnableTagOverride": False,
            "Datacenter": registry.datacenter,
            "CreateIndex": s.create_index,
            "ModifyIndex": s.modify_index,
        }

    def check_json(c: Check) -> dict[str, Any]:
        return {
            "Node": registry.node_name,
            "CheckID": c.id,
            "Name": c.name,
            "Status": c.status,
            "Notes": "",
            "Output": c.output,
            "ServiceID": c.service_id,
            "ServiceName": c.service_name,
            "ServiceTags": list(c.service_tags),
            "Type": c.spec.kind,
            "Definition": dict(c.spec.definition),
            "CreateIndex": c.create_index,
            "ModifyIndex": c.modify_index,
        }

    serf = {
        "Node": registry.node_name,
        "CheckID": "serfHealth",
        "Name": "Serf Health Status",
        "Status": PASSING,
        "Notes": "",
        "Output": "Agent alive and reachable",
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "",
        "Definition": {},
        "CreateIndex": 1,
        "ModifyIndex": 1,
    }

    # -- agent --------------------------------------------------------------------------------------------
    @app.put("/v1/agent/service/register", openapi_extra=SERVICE_BODY)
    async def register(request: Request) -> Response:
        try:
            raw = json.loads(await request.body())
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"request decode failed: {exc}") from None
        body = service_fields(raw)
        name, address, port = body["name"], body["address"], body["port"]
        checks = [check_def(c, name, address or node_addr, port) for c in body["checks"]]
        registry.register_service(
            name=name,
            service_id=body["id"],
            address=address,
            port=port,
            tags=body["tags"],
            meta={str(k): v for k, v in body["meta"].items()},
            checks=checks,
        )
        return Response(status_code=200)

    @app.put("/v1/agent/service/deregister/{service_id:path}")
    async def deregister(service_id: str) -> Response:
        if not registry.deregister_service(service_id):
            return PlainTextResponse(
                f'Unknown service ID "{service_id}". Ensure that the service ID is passed, not the service name.',
                status_code=404,
            )
        return Response(status_code=200)

    @app.get("/v1/agent/services")
    async def agent_services() -> Response:
        return JSONResponse({sid: service_json(s) for sid, s in sorted(registry.services.items())})

    @app.get("/v1/agent/service/{service_id:path}")
    async def agent_service(service_id: str) -> Response:
        service = registry.services.get(service_id)
        if service is None:
            return PlainTextResponse(f"unknown service ID: {service_id}", status_code=404)
        return _json(service_json(service), service.modify_index)

    @app.get("/v1/agent/checks")
    async def agent_checks() -> Response:
        return JSONResponse({cid: check_json(c) for cid, c in sorted(registry.checks.items())})

    # -- health and catalog -------------------------------------------------------------------------------
    @app.get("/v1/health/service/{name}")
    async def health_service(name: str, request: Request) -> Response:
        index = await block(request, clock)
        tags = request.query_params.getlist("tag")
        found = registry.instances(name, tags=tags, passing=flag(request, "passing"))
        entries = [
            {
                "Node": node(),
                "Service": service_json(s),
                "Checks": [serf, *(check_json(c) for c in registry.service_checks(s.id))],
            }
            for s in found
        ]
        return _json(entries, index)

    @app.get("/v1/catalog/services")
    async def catalog_services(request: Request) -> Response:
        index = await block(request, clock)
        return _json(registry.catalog(), index)

    @app.get("/v1/catalog/service/{name}")
    async def catalog_service(name: str, request: Request) -> Response:
        index = await block(request, clock)
        n = node()
        entries = [
            {
                "ID": n["ID"],
                "Node": n["Node"],
                "Address": n["Address"],
                "Datacenter": n["Datacenter"],
                "TaggedAddresses": n["TaggedAddresses"],
                "NodeMeta": n["Meta"],
                "ServiceKind": "",
                "ServiceID": s.id,
                "ServiceName": s.name,
                "ServiceTags": list(s.tags),
                "ServiceAddress": s.address,
                "ServicePort": s.port,
                "ServiceMeta": dict(s.meta),
                "ServiceWeights": WEIGHTS,
                "ServiceEnableTagOverride": False,
                "CreateIndex": s.create_index,
                "ModifyIndex": s.modify_index,
            }
            for s in registry.instances(name, tags=request.query_params.getlist("tag"))
        ]
        return _json(entries, index)

    # -- KV -----------------------------------------------------------------------------------------------
    def kv_json(e: KVEntry) -> dict[str, Any]:
        value = base64.b64encode(e.value).decode() if e.value is not None else None
        return {
            "LockIndex": e.lock_index,
            "Key": e.key,
            "Flags": e.flags,
            "Value": value,
            "CreateIndex": e.create_index,
            "ModifyIndex": e.modify_index,
        }

    @app.get("/v1/kv/{key:path}")
    async def kv_get(key: str, request: Request) -> Response:
        index = await block(request, clock)
        if flag(request, "keys"):
            sep = request.query_params.get("separator", "")
            keys: set[str] = set()
            for e in registry.kv_prefix(key):
                rest = e.key[len(key) :]
                keys.add(key + rest[: rest.index(sep) + len(sep)] if sep and sep in rest else e.key)
            return _json(sorted(keys), index) if keys else _json(None, index, 404)
        entries = registry.kv_prefix(key) if flag(request, "recurse") else [e for e in [registry.kv_get(key)] if e]
        if not entries:
            return Response(status_code=404, headers={"X-Consul-Index": str(index)})
        if flag(request, "raw"):
            return Response(
                entries[0].value or b"",
                media_type="application/octet-stream",
                headers={"X-Consul-Index": str(index)},
            )
        return _json([kv_json(e) for e in entries], index)

    @app.put("/v1/kv/{key:path}", openapi_extra=KV_BODY)
    async def kv_put(key: str, request: Request) -> Response:
        params = request.query_params
        try:
            flags = int(params["flags"]) if "flags" in params else None
            cas = int(params["cas"]) if "cas" in params else None
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        ok = registry.kv_put(key, await request.body(), flags=flags, cas=cas)
        return _json(ok, clock.index)

    @app.delete("/v1/kv/{key:path}")
    async def kv_delete(key: str, request: Request) -> Response:
        cas = request.query_params.get("cas")
        try:
            cas_index = int(cas) if cas else None
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        ok = registry.kv_delete(key, recurse=flag(request, "recurse"), cas=cas_index)
        return _json(ok, clock.index)

    @app.get("/v1/status/leader")
    async def leader() -> Response:
        return JSONResponse(f"{node_addr}:{SERVER_PORT}")

    @app.get("/v1/status/peers")
    async def peers() -> Response:
        return JSONResponse([f"{node_addr}:{SERVER_PORT}"])

    return app
