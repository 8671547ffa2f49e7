"""Provisioning trusts nothing from the wire: each attack of issue 14 replayed against the real API and Ansible.

The Jinja call-home (a command hidden in an IPv6 scope id), hostile addresses, injected facts, the MAC takeover
and a long-lived enrolment token are each refused; values that do land in the inventory are inert, which is
checked by letting Ansible itself render the written inventory and template every variable.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetmind.provisioning.inventory import Inventory
from fleetmind.provisioning.store import JobStore
from fleetmind.security import KeyStore
from tests.provisioning.conftest import Api, body, make_settings, server_env, start_api

ANSIBLE_BIN = Path(sys.executable).parent


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    store = KeyStore(tmp_path / "keys.json")
    key, _ = store.create("provisioning-trust", scope="operator")
    async for a in start_api(make_settings(tmp_path), store, key):
        yield a


def injections(marker: Path) -> list[str]:
    """Jinja that would create ``marker`` (or read a secret) if Ansible ever rendered it."""
    return [
        f"{{{{ lookup('pipe', 'touch {marker}') }}}}",
        f"{{{{ lookup('ansible.builtin.pipe', 'id > {marker}') }}}}",
        "{{ lookup('file', '/etc/shadow') }}",
        f"{{% set x = lookup('pipe', 'touch {marker}') %}}",
    ]


def assert_nothing_left(api: Api) -> None:
    assert not api.settings.inventory_path.exists() or "node-" not in api.settings.inventory_path.read_text()
    store = JobStore(api.settings.db_path)
    try:
        assert store.jobs() == []
    finally:
        store.close()


async def test_the_jinja_call_home_is_refused(api: Api, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for payload in injections(marker):
        r = await api.call_home(body("node-evil", ip=f"::1%{payload}"))
        assert r.status_code == 422, r.text
        assert r.json()["error"]["param"] == "ip"
        r = await api.call_home(body("node-evil", ip="10.0.0.5", facts={"cpu_model": payload}))
        assert r.status_code == 422, r.text
        r = await api.call_home(body(payload, ip="10.0.0.5"))
        assert r.status_code == 422, r.text
    assert not marker.exists()
    assert_nothing_left(api)


@pytest.mark.parametrize(
    "ip",
    [
        "::1%eth0",
        "fe80::1%25eth0",
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "::ffff:127.0.0.1",
        "169.254.169.254",
        "169.254.1.1",
        "fe80::1",
        "fd00:ec2::254",
        "100.100.100.200",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "255.255.255.255",
        "240.0.0.1",
        " 10.0.0.1",
        "10.0.0.1\n",
    ],
)
async def test_addresses_a_node_cannot_have_are_refused(api: Api, ip: str) -> None:
    r = await api.call_home(body("node-addr", ip=ip))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == "ip"
    assert_nothing_left(api)


@pytest.mark.parametrize("ip", ["10.0.0.7", "192.168.1.50", "2001:db8::7", "fd12:3456::7"])
async def test_real_node_addresses_are_accepted(api: Api, ip: str) -> None:
    r = await api.call_home(body("node-ok", ip=ip, mac="52:54:00:aa:00:07"))
    assert r.status_code == 202, r.text
    assert (await api.wait_job(r.json()["job_id"]))["state"] == "successful"
    assert Inventory(api.settings.inventory_path, roles=api.settings.roles).get("node-ok").ip == ip  # type: ignore[union-attr]


def test_values_that_reach_the_inventory_stay_inert(tmp_path: Path) -> None:
    """Even values no validator stopped (written straight through Inventory) are never templated by Ansible."""
    marker = tmp_path / "pwned"
    payloads = injections(marker)
    path = tmp_path / "inventory.yaml"
    inventory = Inventory(path, roles=("worker", "control"))
    inventory.upsert(
        "node-inert",
        role="worker",
        ip=f"::1%{payloads[0]}",
        mac=payloads[1],
        facts={"cpu_model": payloads[2], "cpu_flags": [payloads[3]], "disks": [{"name": payloads[0]}]},
    )
    text = path.read_text()
    assert "ansible_host: !unsafe" in text and "fleetmind_role: !unsafe" in text
    env = {"PATH": f"{ANSIBLE_BIN}:/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1", "HOME": str(tmp_path)}
    listed = subprocess.run(
        [str(ANSIBLE_BIN / "ansible-inventory"), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    hostvars = json.loads(listed.stdout)["_meta"]["hostvars"]["node-inert"]
    # ansible-inventory marks what it will never template: {"__ansible_unsafe": value}
    assert hostvars["ansible_host"] == {"__ansible_unsafe": f"::1%{payloads[0]}"}
    assert hostvars["fleetmind_mac"] == {"__ansible_unsafe": payloads[1]}
    assert hostvars["fleetmind_facts"]["cpu_model"] == {"__ansible_unsafe": payloads[2]}
    # template every variable in a real play on the controller: an unsafe value is used, never rendered
    shown = subprocess.run(
        [
            str(ANSIBLE_BIN / "ansible"),
            "node-inert",
            "-i",
            str(path),
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-m",
            "ansible.builtin.debug",
            "-a",
            "msg={{ [ansible_host, fleetmind_mac, fleetmind_role, fleetmind_facts] }}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "lookup('pipe'" in shown.stdout  # the payload came back as text
    assert "root:" not in shown.stdout  # /etc/shadow was not read
    assert not marker.exists()  # and no command ran


async def test_a_node_bound_to_a_mac_cannot_be_taken_over(api: Api) -> None:
    mac = "52:54:00:aa:bb:01"
    r = await api.call_home(body("node-owned", ip="10.0.0.21", mac=mac))
    assert r.status_code == 202, r.text
    await api.wait_job(r.json()["job_id"])
    for other in (None, "52:54:00:aa:bb:02"):
        payload = body("node-owned", ip="10.0.0.66", **({"mac": other} if other else {}))
        r = await api.call_home(payload)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "mac_mismatch" and r.json()["error"]["param"] == "mac"
    entry = Inventory(api.settings.inventory_path, roles=api.settings.roles).get("node-owned")
    assert entry is not None and entry.ip == "10.0.0.21" and entry.mac == mac
    # the machine itself, with its MAC, is welcome back
    r = await api.call_home(body("node-owned", ip="10.0.0.22", mac=mac.upper()))
    assert r.status_code == 202, r.text
    await api.wait_job(r.json()["job_id"])


async def test_a_node_bound_to_a_mac_by_hand_cannot_be_taken_over(api: Api) -> None:
    Inventory(api.settings.inventory_path, roles=api.settings.roles).upsert(
        "node-hand", role="worker", ip="10.0.0.30", mac="52:54:00:aa:cc:01"
    )
    r = await api.call_home(body("node-hand", ip="10.0.0.31"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "mac_mismatch", r.text


def test_enrolment_tokens_are_single_use_and_short_lived_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetmind.provisioning.cli import app
    from fleetmind.provisioning.settings import get_provision_settings

    for name, value in server_env(tmp_path, "quick.yaml").items():
        if name.startswith("FLEETMIND_"):
            monkeypatch.setenv(name, value)
    get_provision_settings.cache_clear()
    try:
        made = CliRunner().invoke(app, ["token", "create"])
        assert made.exit_code == 0, made.output
        store = JobStore(get_provision_settings().db_path)
        try:
            (token,) = store.tokens()
        finally:
            store.close()
        assert token.max_uses == 1
        assert token.expires_at is not None and token.expires_at - token.created_at <= 3600
    finally:
        get_provision_settings.cache_clear()


async def test_a_single_use_token_opens_the_door_once(api: Api) -> None:
    from tests.provisioning.conftest import make_token

    once = make_token(api.settings, max_uses=1)
    r = await api.call_home(body("node-once", ip="10.0.0.40"), token=once)
    assert r.status_code == 202, r.text
    r = await api.call_home(body("node-twice", ip="10.0.0.41"), token=once)
    assert r.status_code == 401 and "used" in r.json()["error"]["message"]
