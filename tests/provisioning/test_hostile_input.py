"""Hostile or broken call-homes are refused with 4xx and leave nothing behind.

No inventory entry, no job (so no ansible command line), no run folder, no TODO.md line.
"""

from __future__ import annotations

import time

import pytest

from fleetmind.provisioning.store import JobStore
from tests.provisioning.conftest import Api, body, make_token

HOSTILE_NAMES = [
    "node;rm -rf /",
    "node 1",
    "../etc/passwd",
    "node/../../x",
    "{{ lookup('pipe','id') }}",
    "{% raw %}",
    "node:1",
    "a,b",
    "!node",
    "node*",
    "-node",
    "node-",
    "node..lan",
    "'quoted'",
    "node\nall",
    "node\n",
    "\uff4eode",  # a fullwidth n
    "a" * 64,
    ".".join(["a" * 63] * 4 + ["b"]),
    "",
]
MARKERS = [";", "rm -rf", "../", "{{", "{%", "passwd", "lookup", "quoted", "\uff4e", "a" * 64]


@pytest.mark.parametrize("hostname", HOSTILE_NAMES)
async def test_hostile_hostnames_are_refused_with_422(api: Api, hostname: str) -> None:
    r = await api.call_home(body(hostname))
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["param"] == "hostname" and "hostname" in err["message"]
    assert_nothing_left(api)


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        (body("node-a", ip="999.1.1.1"), "ip"),
        (body("node-a", ip="10.0.0"), "ip"),
        (body("node-a", ip="0.0.0.0"), "ip"),
        (body("node-a", ip="224.0.0.1"), "ip"),
        (body("node-a", ip="10.0.0.1; reboot"), "ip"),
        (body("node-a", ip="1" * 100), "ip"),
        (body("node-a", mac="zz:54:00:00:00:01"), "mac"),
        (body("node-a", mac="ff:ff:ff:ff:ff:ff"), "mac"),
        (body("node-a", mac="00:00:00:00:00:00"), "mac"),
        (body("node-a", mac="52:54:00:00:00:01:02"), "mac"),
        (body("node-a", facts={"cpu_model": "{{ 7 * 7 }}"}), "facts.cpu_model"),
        (body("node-a", facts={"cpu_flags": ["sse2", "a b"]}), "facts.cpu_flags[1]"),
        (body("node-a", facts={"cpu_flags": ["x"] * 513}), "facts.cpu_flags"),
        (body("node-a", facts={"disks": [{"name": "../sda", "size_bytes": 1}]}), "facts.disks[0].name"),
        (body("node-a", facts={"cores": -1}), "facts.cores"),
        (body("node-a", facts={"shell": "$(id)"}), "facts.shell"),
        (body("node-a", role="control"), "role"),
        ({"ip": "10.0.0.1"}, "hostname"),
        (body("all"), "hostname"),
        (body("localhost"), "hostname"),
        (body("worker"), "hostname"),
    ],
)
async def test_bad_fields_are_refused_with_422(api: Api, payload: dict[str, object], param: str) -> None:
    r = await api.call_home(payload)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == param
    assert_nothing_left(api)


async def test_body_limits_and_junk(api: Api) -> None:
    big = body("node-a", facts={"cpu_model": "x" * 200_000})
    r = await api.call_home(big)
    assert r.status_code == 413
    r = await api.client.post(
        "/api/ready-for-provisioning",
        content=b"{not json",
        headers={**api.token_headers, "content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"  # one mapping for every app
    assert_nothing_left(api)


async def test_missing_wrong_expired_or_used_tokens_are_refused_with_401(api: Api) -> None:
    good = body("node-t", ip="10.0.0.9", mac="52:54:00:00:00:09")
    r = await api.client.post("/api/ready-for-provisioning", json=good)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    # a bad token is refused before the body is even looked at
    r = await api.client.post(
        "/api/ready-for-provisioning", json={"hostname": ";"}, headers={"Authorization": "Bearer x"}
    )
    assert r.status_code == 401
    assert (await api.call_home(good, token="fmp-not-a-real-token")).status_code == 401
    assert (await api.call_home(good, token=api.api_key)).status_code == 401  # an API key is not an enrolment token
    expired = make_token(api.settings, expires_at=time.time() - 1)
    r = await api.call_home(good, token=expired)
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    assert_nothing_left(api)

    single = make_token(api.settings, max_uses=1)
    assert (await api.call_home(good, token=single)).status_code == 202
    r = await api.call_home(body("node-u", ip="10.0.0.10"), token=single)
    assert r.status_code == 401 and "already used" in r.json()["error"]["message"]

    # the read side wants an API key, not a token
    assert (await api.client.get("/api/provisioning/status")).status_code == 401
    assert (await api.client.get("/api/provisioning/status", headers=api.token_headers)).status_code == 401
    assert (await api.client.get("/api/provisioning/status", headers=api.key_headers)).status_code == 200


async def test_hostile_path_parameters(api: Api) -> None:
    for path in (
        "/api/provisioning/status/a;b",
        "/api/provisioning/status/%7B%7Bx%7D%7D",
        "/api/provisioning/jobs/1",
    ):
        r = await api.client.get(path, headers=api.key_headers)
        assert r.status_code == 422, (path, r.text)
    r = await api.client.post("/api/provisioning/retry/..%2F..%2Fetc", headers=api.key_headers)
    assert r.status_code in (404, 422)
    assert (await api.client.get("/api/provisioning/status/nobody", headers=api.key_headers)).status_code == 404


def assert_nothing_left(api: Api) -> None:
    """No hostile byte reached the inventory or TODO.md, and no job (so no command line) was made."""
    s = api.settings
    for path in (s.inventory_path, s.todo_path):
        text = path.read_text() if path.exists() else ""
        for marker in MARKERS:
            assert marker not in text, (path, marker)
    store = JobStore(s.db_path)
    try:
        assert store.jobs(limit=None) == []
    finally:
        store.close()
    assert not s.runs_dir.exists() or not any(s.runs_dir.iterdir())
