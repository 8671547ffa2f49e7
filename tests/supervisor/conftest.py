"""Fixtures for the supervisor: an embedded cluster (tests/cluster's RunningCluster) and a supervisor over it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetmind.supervisor.detect import Detector
from fleetmind.supervisor.guard import Guard
from fleetmind.supervisor.loop import Options, Supervisor
from tests.cluster.conftest import RunningCluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RunningCluster]:
    running = RunningCluster(tmp_path / "logs")
    try:
        yield running
    finally:
        running.close()


def make_supervisor(cluster: RunningCluster, state_dir: Path, **kwargs: Any) -> Supervisor:
    options = Options(state_dir=state_dir, logs_dir=cluster.logs_dir, verify_timeout_s=40.0, settle_s=1.0)
    for key in [k for k in kwargs if hasattr(options, k)]:
        setattr(options, key, kwargs.pop(key))
    return Supervisor(
        cluster.client,
        options,
        detector=Detector(cluster.client, unhealthy_after_s=1.0, startup_grace_s=30.0),
        guard=Guard(cooldown_s=0.5, storm_window_s=60.0),
        **kwargs,
    )


def tick_until(supervisor: Supervisor, job: str, *, timeout: float = 60.0) -> dict[str, Any]:
    """Tick until the supervisor writes an entry for ``job`` (a hang guard, not a timing check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in supervisor.tick():
            if entry["job"] == job:
                return entry
        time.sleep(0.2)
    pytest.fail(f"the supervisor wrote nothing for {job} within {timeout}s")
