"""Nomad's run-time variables for a task: ``NOMAD_PORT_http``, ``NOMAD_ADDR_http``, ``NOMAD_TASK_DIR`` ...

The job loader leaves ``${NOMAD_*}`` in the strings; here they get their values for one task of one
allocation and are substituted into the command, arguments, environment and service fields. The same names
are exported into the task's environment, as Nomad does. Unknown names are left as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_REF = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}")


def runtime_env(
    *,
    job: Mapping[str, Any],
    group: str,
    task: Mapping[str, Any],
    alloc_id: str,
    alloc_index: int,
    alloc_dir: Path,
    task_dir: Path,
    address: str,
    ports: Mapping[str, int],
    datacenter: str,
    region: str,
) -> dict[str, str]:
    """The ``NOMAD_*`` variables of one task."""
    resources = task.get("Resources") or {}
    env = {
        "NOMAD_ALLOC_DIR": str(alloc_dir),
        "NOMAD_TASK_DIR": str(task_dir),
        "NOMAD_SECRETS_DIR": str(task_dir.parent / "secrets"),
        "NOMAD_ALLOC_ID": alloc_id,
        "NOMAD_SHORT_ALLOC_ID": alloc_id[:8],
        "NOMAD_ALLOC_NAME": f"{job['Name']}.{group}[{alloc_index}]",
        "NOMAD_ALLOC_INDEX": str(alloc_index),
        "NOMAD_GROUP_NAME": group,
        "NOMAD_TASK_NAME": str(task["Name"]),
        "NOMAD_JOB_ID": str(job["ID"]),
        "NOMAD_JOB_NAME": str(job["Name"]),
        "NOMAD_NAMESPACE": str(job.get("Namespace") or "default"),
        "NOMAD_DC": datacenter,
        "NOMAD_REGION": region,
        "NOMAD_CPU_LIMIT": str(resources.get("CPU", 100)),
        "NOMAD_MEMORY_LIMIT": str(resources.get("MemoryMB", 300)),
    }
    for label, port in ports.items():
        name = label.replace("-", "_")
        env[f"NOMAD_PORT_{name}"] = env[f"NOMAD_HOST_PORT_{name}"] = str(port)
        env[f"NOMAD_IP_{name}"] = env[f"NOMAD_HOST_IP_{name}"] = address
        env[f"NOMAD_ADDR_{name}"] = env[f"NOMAD_HOST_ADDR_{name}"] = f"{address}:{port}"
    return env


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Replace ``${NAME}`` with ``env[NAME]`` in a string, or in every string of a list/dict."""
    if isinstance(value, str):
        return _REF.sub(lambda m: env.get(m.group(1).replace("-", "_"), env.get(m.group(1), m.group(0))), value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value
