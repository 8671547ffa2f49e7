"""The design's playbooks (ansible/playbooks/health_check, diagnose_failure, heal_job) run by the real
ansible-playbook against the embedded cluster's Nomad API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cluster.conftest import RunningCluster, wait_for
from tests.supervisor import faults

PLAYBOOKS = Path(__file__).resolve().parents[2] / "ansible" / "playbooks"


def play(cluster: RunningCluster, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOMAD_ADDR": cluster.cluster.nomad_addr, "NOMAD_TOKEN": cluster.cluster.token}
    env["ANSIBLE_CONFIG"] = str(PLAYBOOKS.parent / "ansible.cfg")
    args = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(PLAYBOOKS / name)]
    for pair in extra:
        args += ["-e", pair]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)


def test_playbooks_check_diagnose_and_heal(cluster: RunningCluster, tmp_path: Path) -> None:
    good, bad = faults.good_then_bad(tmp_path)
    cluster.client.register_job(good)
    wait_for(lambda: [a for a in cluster.client.job_allocations("badupdate") if a["ClientStatus"] == "running"])
    healthy = play(cluster, "health_check.yaml")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "none failing" in healthy.stdout
    cluster.client.register_job(bad)
    wait_for(lambda: [a for a in cluster.client.job_allocations("badupdate") if a["ClientStatus"] == "failed"])
    failing = play(cluster, "health_check.yaml")
    assert failing.returncode != 0 and "failing jobs: badupdate" in failing.stdout

    out = tmp_path / "diag.json"
    diag = play(cluster, "diagnose_failure.yaml", "job=badupdate", f"out={out}")
    assert diag.returncode == 0, diag.stdout + diag.stderr
    report = json.loads(out.read_text())
    assert report["versions"] == [1, 0] and report["newest"]["client_status"] == "failed"
    assert "frobnicate" in json.dumps(report["newest"]["task_states"])

    refused = play(cluster, "heal_job.yaml", "job=badupdate", "action=delete")
    assert refused.returncode != 0 and "restart|rollback" in refused.stdout
    healed = play(cluster, "heal_job.yaml", "job=badupdate", "action=rollback", "version=0")
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert cluster.client.job("badupdate")["Version"] == 2
    wait_for(lambda: [a for a in cluster.client.job_allocations("badupdate") if a["ClientStatus"] == "running"])
    assert play(cluster, "health_check.yaml").returncode == 0
    before = {a["ID"] for a in cluster.client.job_allocations("badupdate")}
    restarted = play(cluster, "heal_job.yaml", "job=badupdate", "action=restart")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    wait_for(
        lambda: [
            a
            for a in cluster.client.job_allocations("badupdate")
            if a["ClientStatus"] == "running" and a["ID"] not in before
        ],
        what="the restarted allocation",
    )
