"""schemathesis against Mission Control's own OpenAPI schema, served by a real agent process: whatever it is sent,
it never answers 5xx.

Requests carry a valid admin key, so generated bodies reach validation, the runtime, the event hub, the approval
broker and the tool runner, not just the auth check; the answers must also match the documented statuses,
content types and response schemas.

Safety: this process may reach nothing but loopback and run nothing on the host. Its tool policy refuses every
tool but ``text_stats`` (pure text counting), so neither a fuzzed tool run nor the agent's own workflow can reach
the network tools, the shell or an approval; the tool-run route is fuzzed with ``name`` pinned to that tool. The
cluster and registry addresses point at a closed loopback port.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from tests.envelope import error_envelope
from tests.mission_control.conftest import run_agent

# every error answer is also the one envelope (tests/envelope.py)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    error_envelope,
]
HARMLESS_TOOL = "text_stats"
TOOL_RUN = "/api/tools/{name}/run"
# the only tool this process will run, whoever asks (a fuzzed request, the agent's workflow)
TOOLS_ENV = {
    "FLEETMIND_TOOLS_POLICY": json.dumps({"safe": "refuse", "approval": "refuse", "forbidden": "refuse"}),
    "FLEETMIND_TOOLS_OVERRIDES": json.dumps({HARMLESS_TOOL: "run"}),
    "FLEETMIND_TOOLS_HTTP_ALLOWLIST": "[]",
    "NOMAD_ADDR": "http://127.0.0.1:1",
    # negative cases also break the documented bearer auth on purpose: their 401s must not throttle the valid ones
    # (the throttle has its own tests in tests/security/test_limits.py)
    "FLEETMIND_AUTH_THROTTLE_BURST": "0",
}


class Live:
    def __init__(self, url: str, key: str, log: Path) -> None:
        self.url, self.log = url, log
        self.auth = {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, llama_server_url: str) -> Iterator[Live]:
    state_dir = tmp_path_factory.mktemp("web-schemathesis")
    with run_agent(state_dir, f"general={llama_server_url}", scope="admin", env=TOOLS_ENV) as (url, key, _, log):
        yield Live(url, key, log)
    assert "Traceback" not in log.read_text(errors="replace")


@pytest.fixture(scope="module")
def api_schema(live: Live) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


Seen = Counter[tuple[str, str, int]]


def _fuzz(
    operation: Any, mode: GenerationMode, url: str, headers: dict[str, str], seen: Seen, examples: int = 20
) -> Callable[[], None]:
    # the tool-run route only ever names the harmless tool
    pinned = {"name": HARMLESS_TOOL} if operation.path == TOOL_RUN else None

    @given(case=operation.as_strategy(mode, path_parameters=pinned))
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        assert operation.path != TOOL_RUN or case.path_parameters == pinned
        response = case.call_and_validate(base_url=url, headers=headers, checks=CHECKS)
        seen[(operation.method.upper(), operation.path, response.status_code)] += 1

    return check


def _run_all(operations: list[Any], modes: list[GenerationMode], url: str, headers: dict[str, str], **kw: Any) -> Seen:
    """Fuzz every operation in every mode; all that failed are reported together, not only the first."""
    seen: Seen = Counter()
    failures: dict[str, str] = {}
    for operation in operations:
        for mode in modes:
            try:
                _fuzz(operation, mode, url, headers, seen, **kw)()
            except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' failures are an exception group
                failures[f"{operation.method.upper()} {operation.path} ({mode.value})"] = str(exc)
            except Unsatisfiable:  # nothing of it can be wrong: no body, no parameter but a plain string
                assert mode is GenerationMode.NEGATIVE
    assert not failures, "\n\n".join(f"{where}: {why}" for where, why in failures.items())
    assert not [key for key in seen if key[2] >= 500]
    return seen


@pytest.fixture(scope="module")
def operations(api_schema: schemathesis.BaseSchema) -> list[Any]:
    found = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(found) >= 16
    return found


def test_no_server_errors(operations: list[Any], live: Live) -> None:
    # hypothesis driven by hand, one operation at a time (schemathesis' pytest plugin predates pytest 9);
    # valid requests, and requests that break the schema somewhere (a body, a parameter)
    seen = _run_all(operations, [GenerationMode.POSITIVE], live.url, live.auth)
    # the generated requests got past auth and validation, not only bounced off them (filing an approval request
    # is for the stack's services only: a person's key gets its 403 there, tests/supervisor/test_http_approvals.py)
    assert not [key for key in seen if key[2] in (401, 403, 429) and key != ("POST", "/api/approvals", 403)]
    # requests that break the schema somewhere (a body, a parameter, the documented auth itself)
    seen += _run_all(operations, [GenerationMode.NEGATIVE], live.url, live.auth)
    for route, status in [
        (("POST", "/api/events"), 201),
        (("POST", "/api/events"), 422),
        (("GET", "/api/events"), 200),
        (("POST", TOOL_RUN), 202),
        (("POST", TOOL_RUN), 422),
        (("POST", "/api/agent/chat"), 200),
        (("POST", "/api/agent/chat"), 422),
        (("POST", "/api/approvals/{approval_id}/approve"), 404),
        (("POST", "/api/state/save"), 200),
        (("POST", "/api/state/load"), 400),
    ]:
        assert seen[(*route, status)] > 0, (route, status, sorted(seen.items()))
    # nothing was approved, and nothing but the harmless tool ran
    approvals = httpx.get(f"{live.url}/api/approvals", headers=live.auth).json()
    assert approvals == {"pending": [], "recent": []}
    runs = httpx.get(f"{live.url}/api/tools/runs", headers=live.auth).json()["runs"]
    assert runs and {run["tool"] for run in runs} == {HARMLESS_TOOL}


def test_without_a_key(operations: list[Any], live: Live) -> None:
    """Every route but /health refuses a request without a key, in the envelope and with a documented status."""
    seen = _run_all(operations, [GenerationMode.POSITIVE], live.url, {}, examples=2)
    assert {key[2] for key in seen if key[1] != "/health"} == {401}
    assert sum(n for key, n in seen.items() if key[2] == 401) > 0


def test_schema_documents_every_route(api_schema: schemathesis.BaseSchema) -> None:
    paths = set(api_schema.raw_schema["paths"])
    assert {
        "/health",
        "/api/agent/chat",
        "/api/status",
        "/api/state/save",
        "/api/state/load",
        "/api/events",
        "/api/approvals",
        "/api/approvals/{approval_id}/approve",
        "/api/approvals/{approval_id}/deny",
        "/api/tools",
        TOOL_RUN,
        "/api/tools/runs",
        "/api/tools/runs/{run_id}",
        "/api/conversations",
        "/api/conversations/{conversation_id}",
        "/api/vision/describe",
    } <= paths
