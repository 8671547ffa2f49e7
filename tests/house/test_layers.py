"""The layer rules are a contract that breaks loudly: `lint-imports` (import-linter, run by `make test`) passes on
the tree as it is, and fails, naming the rule, on a copy of the package where one import breaks each rule."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_every_layer_rule() -> None:
    result = lint(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "rule"),
    [
        ("agent/runtime.py", "import fleetmind.mission_control.app", "The agent never imports Mission Control"),
        ("agent/runtime.py", "import fleetmind.gateway.app", "The agent never imports Mission Control or the gateway"),
        ("events.py", "import fleetmind.cluster.client", "Layers: no import goes up"),
        ("provisioning/service.py", "import fleetmind.agent.runtime", "Provisioning never imports the agent"),
        ("gateway/service.py", "import fleetmind.mission_control.deps", "Layers: no import goes up"),
        ("supervisor/__init__.py", "import fleetmind.power", "Layers: no import goes up"),
        ("contracts/protocol.py", "import fleetmind.config", "The contracts import nothing of fleetmind's"),
    ],
)
def test_one_upward_import_breaks_the_build(tmp_path: Path, module: str, line: str, rule: str) -> None:
    copy = tmp_path / "src" / "fleetmind"
    shutil.copytree(ROOT / "src" / "fleetmind", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}  # breaks a rule\n")
    result = lint(tmp_path / "src")
    assert result.returncode != 0
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(ln.startswith(rule) for ln in broken), result.stdout
