"""ansible/ passes ansible-lint's production profile, and every role documents each of its defaults in
meta/argument_specs.yml (the house style: the spec is where a reader learns what a variable is for)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.infra.conftest import ANSIBLE_DIR, ansible_bin

ROLES = sorted(p for p in (ANSIBLE_DIR / "roles").iterdir() if p.is_dir())


@pytest.mark.slow
def test_ansible_lint_production_profile(tmp_path: Path) -> None:
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path), "NO_COLOR": "1", "ANSIBLE_DEPRECATION_WARNINGS": "0"}
    proc = subprocess.run(
        [ansible_bin("ansible-lint"), "--profile", "production", "--offline", "--nocolor"],
        cwd=ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    assert "Profile 'production' was required, and it passed" in output


def test_the_playbook_names_every_role_of_the_design() -> None:
    playbook = yaml.safe_load((ANSIBLE_DIR / "playbook.yaml").read_text())
    used = {r["role"] for play in playbook for r in play.get("roles", [])}
    assert used == {
        "preflight", "common", "docker", "power", "consul", "nomad", "llama_cpp",
        "provisioning_api", "llama_jobs", "pipecatapp", "moe_gateway", "pxe_server", "bootstrap_agent",
    }  # fmt: skip


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_argument_specs_describe_every_default(role: Path) -> None:
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
    spec = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(defaults) <= set(spec), f"undocumented: {set(defaults) - set(spec)}"
    for name, value in defaults.items():
        assert spec[name]["default"] == value, name
        assert spec[name]["description"].strip(), name
    # house style: every variable carries the role's name, internal ones a leading underscore
    assert all(name.startswith(f"{role.name}_") for name in spec), role.name


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_templates_are_marked_as_managed(role: Path) -> None:
    for template in (role / "templates").glob("*.j2") if (role / "templates").is_dir() else []:
        head = template.read_text().splitlines()[:2]
        assert any("ansible_managed | comment" in line for line in head), template.name
