"""`fleetmind up` as a user meets it: the real stack on the tiny model, driven by the official openai client."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import openai
import pytest

from tests.e2e.launcher import Stack, stop_stack, wait_healthy


def _client(stack: Stack, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=key or stack.key, max_retries=0, timeout=60)


def _pids_of(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_chat_non_streaming_and_streaming(tiny_stack: Stack) -> None:
    client = _client(tiny_stack)
    msgs = [{"role": "user", "content": "Say something."}]
    answer = client.chat.completions.create(model="fleetmind", messages=msgs, max_tokens=12, temperature=0, seed=7)  # type: ignore[arg-type]
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens > 0 and answer.usage.prompt_tokens > 0
    assert abs(answer.created - time.time()) < 600  # Unix seconds, not a monotonic clock

    stream = client.chat.completions.create(
        model="fleetmind",
        messages=msgs,
        max_tokens=12,
        temperature=0,
        seed=7,
        stream=True,  # type: ignore[arg-type]
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == answer.choices[0].message.content


def test_models_lists_the_agent_and_the_expert(tiny_stack: Stack) -> None:
    ids = {m.id for m in _client(tiny_stack).models.list()}
    assert {"fleetmind", "general"} <= ids


def test_bad_input_gets_openai_errors_and_the_server_keeps_serving(tiny_stack: Stack) -> None:
    url = tiny_stack.base_url + "/chat/completions"
    body = {"model": "fleetmind", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

    r = httpx.post(url, json=body)
    assert r.status_code == 401 and r.json()["error"]["message"]
    r = httpx.post(url, json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and "error" in r.json()

    auth = {"Authorization": f"Bearer {tiny_stack.key}"}
    r = httpx.post(url, content=b"{not json", headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"

    r = httpx.post(url, json={**body, "model": "no-such-model"}, headers=auth)
    assert r.status_code == 404
    assert "fleetmind" in r.json()["error"]["message"] and "general" in r.json()["error"]["message"]

    r = httpx.post(url, json=body, headers=auth, timeout=60)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] is not None


def test_revoked_key_is_refused(tiny_stack: Stack) -> None:
    made = tiny_stack.cli("keys", "create", "--name", "short-lived")
    key = made.stdout.strip()
    assert _client(tiny_stack, key).models.list()
    key_id = next(
        line.split()[0] for line in tiny_stack.cli("keys", "list").stdout.splitlines() if "short-lived" in line
    )
    tiny_stack.cli("keys", "revoke", key_id)
    with pytest.raises(openai.AuthenticationError):
        _client(tiny_stack, key).models.list()


def test_status_shows_every_job(tiny_stack: Stack) -> None:
    out = tiny_stack.cli("status").stdout
    for job in ("llama-expert", "pipecatapp"):
        assert job in out
    assert "running" in out and "passing" in out


def test_killed_llama_server_is_restarted_and_serves_again(tiny_stack: Stack) -> None:
    pattern = f"llama-server.*--port {tiny_stack.ports['expert']}"
    (pid,) = _pids_of(pattern)
    os.kill(pid, signal.SIGKILL)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = _pids_of(pattern)
        if new and new != [pid]:
            break
        time.sleep(0.2)
    else:
        pytest.fail("llama-server was not restarted")
    wait_healthy(tiny_stack.client, ("expert-general",), 60, tiny_stack.proc)

    answer = _client(tiny_stack).chat.completions.create(
        model="fleetmind",
        messages=[{"role": "user", "content": "again"}],
        max_tokens=4,  # type: ignore[list-item]
    )
    assert answer.choices[0].message.content is not None
    allocs = tiny_stack.client.job_allocations("llama-expert")
    restarts = sum(st.get("Restarts", 0) for a in allocs for st in (a.get("TaskStates") or {}).values())
    assert restarts >= 1
    status = tiny_stack.cli("status").stdout
    row = next(line for line in status.splitlines() if "llama-expert" in line)
    assert any(tok.isdigit() and int(tok) >= 1 for tok in row.replace("│", " ").split())


def test_ctrl_c_stops_everything(tiny_model: object, tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.e2e.launcher import start_stack

    stack = start_stack(tmp_path_factory.mktemp("ctrlc"), str(tiny_model))
    expert = _pids_of(f"llama-server.*--port {stack.ports['expert']}")
    # one machine: the agent's process serves the gateway too
    agent = _pids_of(
        f"fleetmind.apps.agent_process.*--port {stack.ports['ui']}.*--gateway-port {stack.ports['gateway']}"
    )
    assert expert and agent and not _pids_of("-m fleetmind.gateway")
    assert stop_stack(stack) == 0
    time.sleep(0.5)
    for pid in expert + agent:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "fleetmind stopped" in stack.output()


def test_state_save_and_load_over_http(tiny_stack: Stack) -> None:
    ui = f"http://127.0.0.1:{tiny_stack.ports['ui']}"
    auth = {"Authorization": f"Bearer {tiny_stack.key}"}
    assert httpx.post(f"{ui}/api/state/save").status_code == 401
    saved = httpx.post(f"{ui}/api/state/save", headers=auth, timeout=30)
    assert saved.status_code == 200 and "attachment" in saved.headers["content-disposition"]
    document = saved.json()
    assert isinstance(document, dict) and document
    bad = httpx.post(f"{ui}/api/state/load", headers=auth, content=b"not a state file")
    assert bad.status_code == 400
    loaded = httpx.post(f"{ui}/api/state/load", headers=auth, content=saved.content, timeout=30)
    assert loaded.status_code == 200 and loaded.json()["loaded"] is True
    again = httpx.post(f"{ui}/api/state/save", headers=auth, timeout=30).json()
    assert {k: v for k, v in again.items() if k != "saved_at"} == {k: v for k, v in document.items() if k != "saved_at"}
