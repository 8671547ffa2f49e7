"""calculator, json_query, text_stats, hash, base64, text_diff through the runner."""

from __future__ import annotations

import hashlib
import math

import pytest

from fleetmind.tools.runner import ToolRunner

from .conftest import run_ok


async def test_calculator_evaluates_arithmetic_and_refuses_code(runner: ToolRunner) -> None:
    out = await run_ok(runner, "calculator", {"expression": "(2 + 3) * 4 ** 2 / 8 - sqrt(16) + floor(pi)"})
    assert out["result"] == pytest.approx((2 + 3) * 4**2 / 8 - 4 + 3)
    assert (await run_ok(runner, "calculator", {"expression": "log(e) + 7 // 2 + 7 % 4"}))["result"] == 7
    for attack in ("__import__('os').system('id')", "().__class__", "open('/etc/passwd')", "[1, 2]", "x"):
        outcome = await runner.run("calculator", {"expression": attack}, requester="t")
        assert outcome.status == "invalid_arguments", attack
        assert "not allowed" in (outcome.error or "")
    for hang in ("10 ** 10 ** 10", "factorial(100000)"):
        outcome = await runner.run("calculator", {"expression": hang}, requester="t")
        assert outcome.status == "error"
        assert "limit" in (outcome.error or "") or "too large" in (outcome.error or "")
    div = await runner.run("calculator", {"expression": "1/0"}, requester="t")
    assert div.status == "error" and "division" in (div.error or "")
    assert math.isclose((await run_ok(runner, "calculator", {"expression": "-sin(0) + cos(0)"}))["result"], 1.0)


async def test_json_query(runner: ToolRunner) -> None:
    data = {"items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}], "meta": {"odd key": [10, 20]}}
    assert (await run_ok(runner, "json_query", {"data": data, "path": "items[*].name"}))["result"] == ["a", "b"]
    assert (await run_ok(runner, "json_query", {"data": data, "path": 'meta["odd key"][-1]'}))["result"] == 20
    as_text = await run_ok(runner, "json_query", {"data": '{"a": {"b": [true]}}', "path": "$.a.b[0]"})
    assert as_text["result"] is True
    missing = await runner.run("json_query", {"data": data, "path": "items[5]"}, requester="t")
    assert missing.status == "error" and "nothing at 5" in (missing.error or "")
    assert (await runner.run("json_query", {"data": "{", "path": "a"}, requester="t")).status == "invalid_arguments"


async def test_text_stats_hash_base64_diff(runner: ToolRunner) -> None:
    stats = await run_ok(runner, "text_stats", {"text": "The cat sat. The dog ran!\nThe end", "top": 1})
    assert (stats["words"], stats["lines"], stats["sentences"]) == (8, 2, 3)
    assert stats["top_words"] == [["the", 3]]
    digest = await run_ok(runner, "hash", {"text": "fleetmind", "algorithm": "sha1"})
    assert digest["hex"] == hashlib.sha1(b"fleetmind").hexdigest()
    assert (await run_ok(runner, "hash", {"text": ""}))["hex"] == hashlib.sha256(b"").hexdigest()
    assert (await runner.run("hash", {"text": "x", "algorithm": "crc"}, requester="t")).status == "invalid_arguments"
    encoded = (await run_ok(runner, "base64", {"mode": "encode", "text": "héllo"}))["result"]
    assert (await run_ok(runner, "base64", {"mode": "decode", "text": encoded}))["result"] == "héllo"
    assert (await runner.run("base64", {"mode": "decode", "text": "%%%"}, requester="t")).status == "error"
    diff = await run_ok(runner, "text_diff", {"before": "a\nb\n", "after": "a\nc\n"})
    assert diff["changed"] and "-b\n" in diff["diff"] and "+c\n" in diff["diff"]
    assert (await run_ok(runner, "text_diff", {"before": "same", "after": "same"}))["changed"] is False
