"""Twenty streaming clients at once, each a process of its own, through the real gateway, agent and llama-server.

Every client sends a prompt of a different length, so its own answer is recognisable by the prompt token count
the model reports in that answer's usage: an answer that went to the wrong client shows up as the wrong count.
One client is killed (SIGKILL, no goodbye) while its answer streams; the other nineteen must be unaffected.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

from tests.gateway.gateway_helpers import Stack

CLIENTS = 20
MAX_TOKENS = 64
# on the tiny random model a one-word prompt runs on without an end of text: a stream long enough to cut. The tiny
# model writes thousands of tokens a second, so the stream must outlast noticing the kill on a loaded machine (3000
# tokens once finished first in a whole-suite run): nearly the whole 8192-token context of the wide stack's expert.
VICTIM_WORDS = 1
VICTIM_TOKENS = 7500
REPO = Path(__file__).resolve().parents[2]


def prompt_tokens(stack: Stack, words: int) -> int:
    with openai.OpenAI(base_url=stack.gateway_url + "/v1", api_key=stack.api_key, max_retries=0) as client:
        usage = client.chat.completions.create(
            model="fleetmind",
            messages=[{"role": "user", "content": " ".join(["hello"] * words)}],
            max_tokens=1,
            temperature=0,
        ).usage
    assert usage is not None
    return usage.prompt_tokens


def agent_outcome(stack: Stack, request_id: str) -> str:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for answer in httpx.get(stack.agent_url + "/api/status", headers=headers).json()["recent"]:
            if answer["id"] == request_id:
                return str(answer["outcome"])
        time.sleep(0.2)
    raise AssertionError(f"the agent never finished {request_id}")


def start_client(stack: Stack, words: int, max_tokens: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.gateway.stream_client",
            stack.gateway_url,
            stack.api_key,
            str(words),
            str(max_tokens),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_twenty_streams_each_get_their_own_answer_and_a_killed_one_disturbs_none(wide_stack: Stack) -> None:
    stack = wide_stack
    words = range(2, CLIENTS + 1)  # the others: 19 different prompt lengths
    expected = {w: prompt_tokens(stack, w) for w in words}
    assert len(set(expected.values())) == CLIENTS - 1  # every prompt is recognisable by its length

    others = {w: start_client(stack, w, MAX_TOKENS) for w in words}
    victim = start_client(stack, VICTIM_WORDS, VICTIM_TOKENS)
    assert victim.stdout is not None
    started = victim.stdout.readline()  # its answer is streaming, and so are the others'
    victim.kill()
    _, err = victim.communicate(timeout=10)
    assert started.startswith("started chatcmpl-"), err
    victim_request = "req-" + started.split()[1].removeprefix("chatcmpl-")

    results = {}
    for i, proc in others.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results[i] = json.loads(out.strip().splitlines()[-1])
    for i, result in results.items():
        assert len(result["ids"]) == 1, result  # one completion per stream, no chunks from another
        assert result["usage"]["prompt_tokens"] == expected[i], (i, result["usage"])
        assert 0 < result["usage"]["completion_tokens"] <= MAX_TOKENS
        assert result["text"]
    assert len({r["ids"][0] for r in results.values()}) == CLIENTS - 1
    # the victim's request did not run on to its end: the agent cancelled it when the gateway let go
    assert agent_outcome(stack, victim_request) == "cancelled"
    # the gateway is still healthy and answers a new request after all that
    assert prompt_tokens(stack, 3) == expected[3]
    assert "Traceback" not in stack.gateway_log.read_text(errors="replace")
