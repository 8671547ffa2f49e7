"""schemathesis against the gateway's own OpenAPI schema: whatever it is sent, it never answers 5xx.

The gateway runs as a process in front of the real agent and llama-server (tiny model), with a valid key, so
generated requests that pass validation really reach the agent and the model; the answers must also match
the documented statuses, content types and response schemas. Hypothesis is driven by hand, one operation at
a time, because schemathesis' pytest plugin predates pytest 9 (as in tests/provisioning/test_schemathesis.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from tests.envelope import error_envelope
from tests.gateway.gateway_helpers import Stack

# every error answer is also the one envelope (tests/envelope.py)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    error_envelope,
]
EXAMPLES = {"/v1/chat/completions": 60}
SAMPLING = {"temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stream", "presence_penalty",
            "frequency_penalty"}  # fmt: skip


def _fuzz(
    operation: Any, url: str, headers: dict[str, str], seen: Counter[tuple[str, int]], mode: GenerationMode
) -> Callable[[], None]:
    @given(case=operation.as_strategy(mode), fix=st.sampled_from(["nothing", "model", "model and messages"]))
    @settings(
        max_examples=EXAMPLES.get(operation.path, 25) // (1 if mode is GenerationMode.POSITIVE else 2),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case, fix: str) -> None:
        # a random model name is (rightly) a 404 and random messages are mostly refused (a tool answer with no
        # call id, an image part ...): some bodies get a real model, some plain messages too, so that the rest
        # of the generated body (sampling, stop, stream, response_format) reaches the agent and the model
        if fix != "nothing" and isinstance(case.body, dict):
            case.body["model"] = "fleetmind"
            if fix == "model and messages":
                case.body["messages"] = [{"role": "user", "content": "Hello."}]
                # and only the sampling parameters, as generated: the others are refused by value (n=2,
                # stream_options without stream, a stop list holding objects, any text holding a lone surrogate,
                # which hypothesis writes often) or by the tiny test model (its byte vocabulary cannot build the
                # JSON grammar of response_format, so llama-server answers 400 to it; the packaged model serves it)
                for name in set(case.body) - SAMPLING - {"model", "messages"}:
                    case.body.pop(name, None)
        response = case.call_and_validate(base_url=url, headers=headers, checks=CHECKS, timeout=60)
        seen[(operation.path, response.status_code)] += 1

    return check


def test_no_server_errors(stack: Stack) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.gateway_url}/openapi.json")
    paths = set(schema.raw_schema["paths"])
    assert {"/v1/chat/completions", "/v1/models", "/v1/models/{model_id}", "/health", "/metrics"} <= paths
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    seen: Counter[tuple[str, int]] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 5
    for operation in operations:
        _fuzz(operation, stack.gateway_url, headers, seen, GenerationMode.POSITIVE)()
        if operation.path == "/v1/chat/completions":
            # bodies that break the schema on purpose (only an operation with a body has one to break)
            _fuzz(operation, stack.gateway_url, headers, seen, GenerationMode.NEGATIVE)()
    assert not [key for key in seen if key[1] >= 500], seen
    # generated chats got past validation to the model, not only bounced off it
    assert seen[("/v1/chat/completions", 200)] > 0, seen
    assert seen[("/v1/chat/completions", 400)] > 0, seen
    log = stack.gateway_log.read_text(errors="replace")
    assert "Traceback" not in log
