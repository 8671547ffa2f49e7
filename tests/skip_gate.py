"""The suite's skip gate: a skipped test outside :data:`ALLOWED_SKIPS` is a failure, and every skip is listed.

``make test`` installs everything the suite needs (the Debian packages of scripts/apt-test.txt, the venv, the
models, llama.cpp), so a test that skips there has lost the thing it tests: a broken install step would land green
while its tests silently vanish. Only what cannot exist on a machine that ran ``make test`` may skip: a live
Nomad/Consul cluster and the opt-in build of llama.cpp from source. Anything else that skips is reported as a
failure, with the reason it gave. ``tests/conftest.py`` installs the hooks; ``.ci/run`` runs ``make test``, so CI
fails on the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass

import pytest

# node id pattern ("*" matches anything) → why it may skip
ALLOWED_SKIPS: dict[str, str] = {
    "tests/cluster/test_cluster_live.py::*[live]": (
        "a live Nomad/Consul, opted into with FLEETMIND_LIVE_NOMAD_ADDR / FLEETMIND_LIVE_CONSUL_ADDR"
    ),
    "tests/infra/test_converge.py::test_llama_cpp_builds_from_the_pinned_sdist_for_this_cpu": (
        "the opt-in build of llama.cpp from source in the chroot (FLEETMIND_TEST_LLAMA_BUILD=1)"
    ),
    "tests/infra/test_whole_chain.py::*": (
        "the opt-in whole chain in a QEMU VM, long under TCG (FLEETMIND_WHOLE_CHAIN=1, `make whole-chain`)"
    ),
}


@dataclass(frozen=True)
class Skip:
    nodeid: str
    reason: str
    allowed_because: str | None


SKIPS = pytest.StashKey[list[Skip]]()


def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")) + r"\Z")


_ALLOWED = [(_pattern(glob), why) for glob, why in ALLOWED_SKIPS.items()]


def allowed_because(nodeid: str) -> str | None:
    """Why ``nodeid`` may skip, or None when it may not."""
    return next((why for pattern, why in _ALLOWED if pattern.match(nodeid)), None)


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _record(config: pytest.Config, report: pytest.TestReport | pytest.CollectReport) -> Skip:
    skip = Skip(report.nodeid, _reason(report), allowed_because(report.nodeid))
    config.stash.setdefault(SKIPS, []).append(skip)
    return skip


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    report = yield
    assert isinstance(report, pytest.TestReport)
    if report.skipped and not hasattr(report, "wasxfail"):
        skip = _record(item.config, report)
        if skip.allowed_because is None:
            report.outcome = "failed"
            report.longrepr = f"skipped, which this suite does not allow (tests/skip_gate.py): {skip.reason}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, object, object]:
    # a whole module skipped at import: none of its tests runs, so it counts as they would
    report = yield
    assert isinstance(report, pytest.CollectReport)
    if report.skipped:
        _record(collector.config, report)
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    refused = [s for s in session.config.stash.get(SKIPS, []) if s.allowed_because is None]
    if refused and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    skips = config.stash.get(SKIPS, [])
    terminalreporter.write_sep("=", f"skip gate: {len(skips)} skipped (allowed set in tests/skip_gate.py)")
    for skip in skips:
        verdict = "allowed" if skip.allowed_because else "NOT ALLOWED (failed)"
        terminalreporter.write_line(f"{verdict}: {skip.nodeid}: {skip.reason}")
    refused = [s for s in skips if s.allowed_because is None]
    if refused:
        terminalreporter.write_line(f"{len(refused)} skip(s) outside the allowed set: the run fails", red=True)
