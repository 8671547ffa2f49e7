"""schemathesis against the served API's own OpenAPI schema: whatever it is sent, it never answers 5xx.

Requests carry a valid enrolment token or API key, so generated bodies reach validation, the database, the
inventory and the job queue, not just the auth check; the answers must also match the documented statuses,
content types and response schemas.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import stop_process
from tests.envelope import error_envelope
from tests.provisioning.conftest import Server, api_key_for, server_env, start_server, token_for

# every error answer is also the one envelope (tests/envelope.py)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    error_envelope,
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str], dict[str, str]]]:
    root = tmp_path_factory.mktemp("schemathesis")
    env = server_env(root, "quick.yaml", FLEETMIND_PROVISION_CONCURRENCY="1")
    token, key = token_for(env), api_key_for(env)
    server = start_server(env, root / "server.log")
    yield server, {"Authorization": f"Bearer {token}"}, {"Authorization": f"Bearer {key}"}
    stop_process(server.proc)
    assert "Traceback" not in server.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def api_schema(live: tuple[Server, dict[str, str], dict[str, str]]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live[0].url}/openapi.json")


def _fuzz(operation: Any, url: str, headers: dict[str, str], seen: Counter[tuple[str, int]]) -> Callable[[], None]:
    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(base_url=url, headers=headers, checks=CHECKS)
        seen[(operation.path, response.status_code)] += 1

    return check


def test_no_server_errors(
    api_schema: schemathesis.BaseSchema, live: tuple[Server, dict[str, str], dict[str, str]]
) -> None:
    # hypothesis driven by hand, one operation at a time (schemathesis' pytest plugin predates pytest 9)
    server, token, key = live
    seen: Counter[tuple[str, int]] = Counter()
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 8
    for operation in operations:
        headers = token if operation.path == "/api/ready-for-provisioning" else key
        _fuzz(operation, server.url, headers, seen)()
    # the generated requests got past auth and validation, not only bounced off them
    assert seen[("/api/ready-for-provisioning", 202)] > 0
    assert seen[("/api/ready-for-provisioning", 422)] > 0
    assert not [key for key in seen if key[1] >= 500]


def test_schema_documents_every_route(api_schema: schemathesis.BaseSchema) -> None:
    paths = set(api_schema.raw_schema["paths"])
    assert {
        "/api/ready-for-provisioning",
        "/api/provisioning/status",
        "/api/provisioning/status/{hostname}",
        "/api/provisioning/jobs/{job_id}",
        "/api/provisioning/nodes",
        "/api/provisioning/retry/{hostname}",
        "/health",
        "/metrics",
    } <= paths
