"""schemathesis against the embedded Nomad and Consul APIs, with the cluster token: whatever they are sent, they
never answer 5xx.

The apps describe their routes in an OpenAPI document (FastAPI's, with the documented request bodies), which is
taken from the app in-process; the requests go over real sockets to a running EmbeddedCluster, with the token,
so generated bodies get past the token check to the JSON decoding, the job shape check and the registry.
Hypothesis is driven by hand, one operation at a time, as in tests/gateway/test_gateway_schemathesis.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from conftest import RunningCluster
from fleetmind.cluster.embedded.consul_api import create_consul_app
from fleetmind.cluster.embedded.nomad_api import create_nomad_app

EXAMPLES = 25


def _fuzz(
    operation: Any, url: str, headers: dict[str, str], seen: Counter[tuple[str, str, int]], mode: GenerationMode
) -> Callable[[], None]:
    @given(case=operation.as_strategy(mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(base_url=url, headers=headers, checks=[not_a_server_error], timeout=30)
        seen[(operation.method.upper(), operation.path, response.status_code)] += 1

    return check


def _run(schema: schemathesis.BaseSchema, url: str, headers: dict[str, str]) -> Counter[tuple[str, str, int]]:
    seen: Counter[tuple[str, str, int]] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    for operation in operations:
        _fuzz(operation, url, headers, seen, GenerationMode.POSITIVE)()
        if any(body.media_type == "application/json" for body in operation.body):  # JSON that breaks the schema
            _fuzz(operation, url, headers, seen, GenerationMode.NEGATIVE)()
    assert not [key for key in seen if key[2] >= 500], seen
    return seen


def test_nomad_api_never_answers_5xx(running_cluster: RunningCluster) -> None:
    cluster = running_cluster.cluster
    app = create_nomad_app(cluster.orchestrator, token=cluster.token)
    schema = schemathesis.openapi.from_dict(app.openapi())
    seen = _run(schema, cluster.nomad_addr, {"X-Nomad-Token": cluster.token})
    # generated jobs reached the job checks (400), not only the token or content-type checks
    assert seen[("POST", "/v1/jobs", 400)] > 0 and seen[("PUT", "/v1/job/{job_id}", 400)] > 0, seen
    assert not cluster.orchestrator.jobs


def test_consul_api_never_answers_5xx(running_cluster: RunningCluster) -> None:
    cluster = running_cluster.cluster
    app = create_consul_app(cluster.registry, token=cluster.token)
    schema = schemathesis.openapi.from_dict(app.openapi())
    seen = _run(schema, f"http://{cluster.consul_addr}", {"X-Consul-Token": cluster.token})
    assert seen[("PUT", "/v1/agent/service/register", 400)] > 0, seen
    assert seen[("PUT", "/v1/agent/service/register", 200)] > 0, seen
