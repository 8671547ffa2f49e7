"""The acceptance test of the first issue: the packaged model, through `fleetmind up`, names Paris."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.e2e.launcher import start_stack, stop_stack

pytestmark = pytest.mark.slow


def test_capital_of_france_through_the_whole_stack(packaged_model: Path, tmp_path: Path) -> None:
    stack = start_stack(tmp_path, "smollm2-135m-instruct", timeout=180)
    try:
        client = openai.OpenAI(base_url=stack.base_url, api_key=stack.key, max_retries=0, timeout=120)
        question = [{"role": "user", "content": "What is the capital of France?"}]
        answer = client.chat.completions.create(model="fleetmind", messages=question, temperature=0, max_tokens=40)  # type: ignore[arg-type]
        assert "Paris" in (answer.choices[0].message.content or "")
        stream = client.chat.completions.create(
            model="fleetmind",
            messages=question,
            temperature=0,
            max_tokens=40,
            stream=True,  # type: ignore[arg-type]
        )
        assert "Paris" in "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    finally:
        stop_stack(stack)
