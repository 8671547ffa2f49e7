"""The adaptation agent's definition (prompt_engineering/agents/ADAPTATION_AGENT.md, where the design names it) says
what the code does: the allowlist it names is the LLM's, and the cases folder it names is where cases are saved."""

from __future__ import annotations

import re
from pathlib import Path

from fleetmind.supervisor.actions import LLM_ACTIONS
from fleetmind.supervisor.cases import HEAL, cases_dir, save_case

AGENT = Path(__file__).resolve().parents[2] / "prompt_engineering" / "agents" / "ADAPTATION_AGENT.md"


def test_the_definition_names_the_llms_allowlist() -> None:
    text = " ".join(AGENT.read_text().split())
    named = re.search(r"constrained to the allowlist \(([^)]*)\)", text)
    assert named is not None, "the definition no longer names the allowlist"
    assert tuple(a.strip() for a in named.group(1).split(",")) == LLM_ACTIONS


def test_the_definition_names_where_cases_are_saved(tmp_path: Path) -> None:
    text = AGENT.read_text()
    saved = save_case(tmp_path, {"job": "web", "fault": {"kind": "crash_loop"}}, expected=HEAL)
    assert saved.parent == cases_dir(tmp_path)
    relative = saved.parent.relative_to(tmp_path)
    assert f"`<state dir>/{relative}/<job>-<fault kind>-<hash>.yaml`" in text
    assert re.fullmatch(r"web-crash_loop-[0-9a-f]+\.yaml", saved.name), saved.name
