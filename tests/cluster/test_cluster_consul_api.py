"""The embedded registry through Consul's API: agent registration, health with passing/tag, catalog, KV,
leader."""

from __future__ import annotations

import base64
import threading

import consul
import pytest

from conftest import RunningCluster, wait_for
from fleetmind.cluster.client import ClusterClient
from fleetmind.cluster.errors import RegistryUnavailable


def test_registered_service_with_http_check(running_cluster: RunningCluster) -> None:
    rc = running_cluster
    healthy_url = rc.cluster.nomad_addr + "/v1/status/leader"  # any 200 answer will do
    rc.client.register_service(
        "ext",
        service_id="ext-1",
        address="127.0.0.1",
        port=1234,
        tags=["x", "y"],
        meta={"k": "v"},
        http_check=healthy_url,
        interval="1s",
    )
    found = wait_for(lambda: rc.client.healthy_services("ext", tag="x"), what="passing")
    assert [(s.id, s.port, s.tags, s.meta) for s in found] == [("ext-1", 1234, ("x", "y"), {"k": "v"})]
    assert rc.client.healthy_services("ext", tag="other") == []
    base = f"http://{rc.cluster.consul_addr}"
    http = rc.http
    entry = http.get(f"{base}/v1/health/service/ext", params={"passing": "1"}).json()[0]
    assert set(entry) == {"Node", "Service", "Checks"}
    assert {c["CheckID"] for c in entry["Checks"]} == {"serfHealth", "service:ext-1"}
    assert all(c["Status"] == "passing" for c in entry["Checks"])
    assert http.get(f"{base}/v1/catalog/services").json() == {"ext": ["x", "y"]}
    catalog = http.get(f"{base}/v1/catalog/service/ext", params={"tag": "y"}).json()
    assert catalog[0]["ServiceID"] == "ext-1" and catalog[0]["ServicePort"] == 1234
    agent = http.get(f"{base}/v1/agent/services").json()
    assert agent["ext-1"]["Service"] == "ext" and agent["ext-1"]["Tags"] == ["x", "y"]
    assert rc.client.deregister_service("ext-1") is True
    assert rc.client.deregister_service("ext-1") is False
    assert rc.client.healthy_services("ext") == []


def test_failing_and_tcp_checks(running_cluster: RunningCluster) -> None:
    rc = running_cluster
    host, port = rc.cluster.consul_addr.split(":")
    rc.client.register_service("up", port=int(port), tcp_check=f"{host}:{port}", interval="1s")
    rc.client.register_service("down", port=9, http_check="http://127.0.0.1:9/health", interval="1s", timeout="1s")
    wait_for(lambda: rc.client.healthy_services("up"), what="tcp check passing")
    wait_for(lambda: rc.cluster.registry.checks["service:down"].runs >= 1, what="down checked")
    assert rc.client.healthy_services("down") == []
    _, entries = consul.Consul(host=host, port=int(port), token=rc.cluster.token).health.service("down")
    assert entries[0]["Checks"][1]["Status"] == "critical" and entries[0]["Checks"][1]["Output"]


def test_service_without_checks_is_passing(running_cluster: RunningCluster) -> None:
    running_cluster.client.register_service("plain", port=80, tags=["t"])
    assert [s.name for s in running_cluster.client.services_by_tag("t")] == ["plain"]


def test_unsupported_check_is_refused(running_cluster: RunningCluster) -> None:
    host, port = running_cluster.cluster.consul_addr.split(":")
    agent = consul.Consul(host=host, port=int(port), token=running_cluster.cluster.token)
    with pytest.raises(consul.ConsulException, match="not supported"):
        agent.agent.service.register("ttl", check=consul.Check.ttl("10s"))


def test_kv_round_trip_in_consul_shapes(running_cluster: RunningCluster) -> None:
    rc = running_cluster
    assert rc.client.kv_get("cfg/a") is None
    rc.client.kv_put("cfg/a", b"\x00binary\xff")
    rc.client.kv_put("cfg/b/c", b"two")
    assert rc.client.kv_get("cfg/a") == b"\x00binary\xff"
    base = f"http://{rc.cluster.consul_addr}/v1/kv"
    http = rc.http
    entry = http.get(f"{base}/cfg/a").json()[0]
    assert base64.b64decode(entry["Value"]) == b"\x00binary\xff"
    assert {"LockIndex", "Key", "Flags", "Value", "CreateIndex", "ModifyIndex"} <= set(entry)
    assert http.get(f"{base}/cfg/a", params={"raw": ""}).content == b"\x00binary\xff"
    assert http.get(f"{base}/cfg/", params={"keys": "", "separator": "/"}).json() == ["cfg/a", "cfg/b/"]
    assert len(http.get(f"{base}/cfg", params={"recurse": ""}).json()) == 2
    assert http.put(f"{base}/cfg/a", params={"cas": 1}, content=b"x").json() is False
    assert http.put(f"{base}/cfg/a", params={"cas": entry["ModifyIndex"]}, content=b"x").json() is True
    rc.client.kv_delete("cfg", recurse=True)
    assert http.get(f"{base}/cfg/a").status_code == 404


def test_leader_and_blocking_catalog(running_cluster: RunningCluster) -> None:
    base = f"http://{running_cluster.cluster.consul_addr}"
    http = running_cluster.http
    assert http.get(f"{base}/v1/status/leader").json() == "127.0.0.1:8300"
    index = int(http.get(f"{base}/v1/catalog/services").headers["X-Consul-Index"])
    later = threading.Timer(0.2, running_cluster.client.register_service, args=("late",), kwargs={"port": 1})
    later.start()
    resp = http.get(f"{base}/v1/catalog/services", params={"index": index, "wait": "30s"}, timeout=60)
    later.join()
    assert int(resp.headers["X-Consul-Index"]) > index and "late" in resp.json()


def test_unreachable_registry_is_a_clear_error() -> None:
    with ClusterClient(consul_addr="127.0.0.1:9", nomad_addr="http://127.0.0.1:9") as client:
        with pytest.raises(RegistryUnavailable, match=r"127\.0\.0\.1:9"):
            client.services_by_tag("expert")
        with pytest.raises(RegistryUnavailable):
            client.kv_get("k")
