"""Mission Control in a real browser (Debian's chromium driven by Playwright) against the whole real stack.

One stack on the tiny model; the page is driven the way a person does: enter the key, chat and watch the live
events, run ``shell`` from the tool console and approve it, run it again and deny it, look at the cluster view,
save the state (a download), restart the stack on the same state dir, load the file and find the conversation
again. Screenshots go to ``FLEETMIND_ARTIFACTS_DIR`` (default ``tests/artifacts/``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.launcher import Stack, start_stack, stop_stack

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium")

# From ENVIRONMENT.md: without the background-networking flags Chromium keeps trying hosts it cannot reach.
# Playwright adds --headless and a fresh --user-data-dir itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000


def artifacts_dir() -> Path:
    path = Path(os.environ.get("FLEETMIND_ARTIFACTS_DIR") or Path(__file__).resolve().parents[1] / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Session:
    """The stack under test, which the last test replaces with a restarted one."""

    def __init__(self, tmp: Path, model: str) -> None:
        self.tmp = tmp
        self.model = model
        self.stack: Stack = start_stack(tmp, model)

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.stack.ports['ui']}/"

    def restart(self) -> None:
        stop_stack(self.stack)
        self.stack = start_stack(self.tmp, self.model)


@pytest.fixture(scope="module")
def session(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    s = Session(tmp_path_factory.mktemp("mc-stack"), str(tiny_model))
    try:
        yield s
    finally:
        stop_stack(s.stack)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def page(browser: Any, session: Session) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1300}, accept_downloads=True)
    p = context.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    open_with_key(p, session)
    yield p
    context.close()
    assert errors == [], f"the page threw: {errors}"


def open_with_key(p: Any, session: Session) -> None:
    p.goto(session.ui)
    assert p.locator("#app").is_hidden()
    p.fill("#key", session.stack.key)
    p.click("#key-submit")
    p.wait_for_selector("#app:not([hidden])")
    p.wait_for_selector("#log-status.ok")
    assert p.evaluate("sessionStorage.getItem('fleetmind.key')") == session.stack.key
    assert p.evaluate("localStorage.length") == 0


def test_a_wrong_key_is_refused(browser: Any, session: Session) -> None:
    context = browser.new_context()
    p = context.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    p.goto(session.ui)
    p.fill("#key", "fm-not-a-key")
    p.click("#key-submit")
    p.wait_for_selector("#key-status.bad")
    assert p.locator("#app").is_hidden()
    assert p.evaluate("sessionStorage.getItem('fleetmind.key')") is None
    context.close()


def test_chat_answer_and_live_log_lines(page: Any) -> None:
    page.fill("#chat-input", "Hello from Mission Control")
    page.click("#chat-send")
    answer = page.locator("[data-testid=chat-assistant][data-state=done]").last
    answer.wait_for()
    assert "general" in answer.locator(".meta").inner_text() and "tokens" in answer.locator(".meta").inner_text()
    assert page.locator("[data-testid=chat-user]").last.inner_text() == "Hello from Mission Control"
    # The turn, the routing decision and the answer arrive as live log lines.
    for kind in ("agent_turn", "route", "agent_answer"):
        page.wait_for_selector(f"#log li[data-kind={kind}]", state="attached")
    assert "Hello from Mission Control" in page.locator("#log li[data-kind=agent_turn]").last.inner_text()
    seqs = [int(s) for s in page.eval_on_selector_all("#log li[data-seq]", "els => els.map(e => e.dataset.seq)")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def run_shell(page: Any, command: str) -> tuple[Any, Any]:
    """Start `shell` from the tool console; returns (the run's card, its approval card)."""
    page.select_option("#tool-select", "shell")
    assert page.inner_text("#tool-risk") == "approval"
    page.fill("#tool-args", json.dumps({"command": command}))
    before = page.inner_text("#tool-message")
    page.click("#tool-run")
    # this run's message, not the previous run's (the page clears it when the form is sent)
    page.wait_for_function(
        "prev => { const m = document.getElementById('tool-message');"
        " return m.classList.contains('ok') && m.textContent !== prev; }",
        arg=before,
    )
    run_id = page.inner_text("#tool-message").removeprefix("started ").strip()
    run = page.locator(f"[data-testid=run-{run_id}]")
    run.wait_for()
    assert run.get_attribute("data-status") == "running"
    approval = page.locator("[data-testid^=approval-][data-tool=shell]").filter(has_text=command)
    approval.wait_for()
    return run, approval


def test_shell_waits_for_approval_then_runs(page: Any, session: Session) -> None:
    run, approval = run_shell(page, "echo mission-control-$((6 * 7))")
    assert page.inner_text("#approvals-count") != "0"
    # the page's key started the run, so approving it is approving one's own request: the page asks for the
    # request's one-time code, which the person at the machine reads with the CLI (the second factor)
    approval_id = (approval.get_attribute("data-testid") or "").removeprefix("approval-")
    code = session.stack.cli("approvals", "code", approval_id).stdout.strip()
    prompts: list[str] = []

    def answer(dialog: Any) -> None:
        prompts.append(dialog.message)
        dialog.accept(code)

    page.once("dialog", answer)
    approval.locator("button.approve").click()
    page.wait_for_selector(f"[data-testid={run.get_attribute('data-testid')}][data-status=ok]")
    assert "mission-control-42" in run.locator("[data-testid=run-output]").inner_text()
    page.wait_for_selector("#approvals-recent li:has-text('approved')")
    page.wait_for_selector("#log li[data-kind=approval_decided]", state="attached")
    assert prompts and "own request" in prompts[0]


def test_denied_shell_does_not_run(page: Any, session: Session) -> None:
    marker = "denied-marker"
    run, approval = run_shell(page, f"touch {marker}")
    approval.locator("button.deny").click()
    page.wait_for_selector(f"[data-testid={run.get_attribute('data-testid')}][data-status=denied]")
    assert run.locator("[data-testid=run-output]").count() == 0
    assert "approval denied" in run.locator("[data-testid=run-error]").inner_text()
    assert not list(session.stack.state_dir.rglob(marker))  # the command never ran
    page.wait_for_selector("#approvals-recent li:has-text('denied')")


def test_cluster_view_shows_jobs_health_and_experts(page: Any) -> None:
    page.wait_for_selector("[data-testid=job-pipecatapp]")
    page.wait_for_selector("[data-testid=job-llama-expert]")
    row = page.locator("[data-testid=job-pipecatapp]").first
    assert "running" in row.inner_text() and "pipecatapp: passing" in row.inner_text()
    expert = page.locator("[data-testid=expert-general]")
    expert.wait_for()
    assert "healthy" in expert.inner_text()
    page.screenshot(path=str(artifacts_dir() / "mission-control.png"), full_page=True)


def test_the_self_healing_panel_shows_what_the_supervisor_did(page: Any, session: Session) -> None:
    # a hung expert (SIGSTOP): the stack's own supervisor restarts it, and its audit entry arrives on the page
    import signal
    import subprocess

    pattern = f"llama-server.*--port {session.stack.ports['expert']}"
    (pid,) = [int(p) for p in subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()]
    os.kill(pid, signal.SIGSTOP)
    row = page.locator("[data-testid=healing-row]", has_text="healed").first
    row.wait_for(timeout=90_000)
    text = row.inner_text()
    assert "llama-expert" in text and "restart" in text and "rule" in text
    assert int(page.locator("[data-testid=healing-count]").inner_text()) >= 1
    page.wait_for_selector("[data-testid=expert-general]:has-text('healthy')", timeout=90_000)
    page.screenshot(path=str(artifacts_dir() / "mission-control-healing.png"), full_page=True)


def test_state_survives_a_restart_through_save_and_load(page: Any, browser: Any, session: Session) -> None:
    asked = page.locator("[data-testid=chat-user]").first.inner_text()
    with page.expect_download() as download_info:
        page.click("#state-save")
    saved = session.tmp / "saved-state.json"
    download_info.value.save_as(saved)
    assert json.loads(saved.read_text())["format"] == "fleetmind-agent-state"
    page.wait_for_selector("#state-message.ok")

    session.restart()
    context = browser.new_context(viewport={"width": 1400, "height": 1300})
    fresh = context.new_page()
    fresh.set_default_timeout(TIMEOUT_MS)
    open_with_key(fresh, session)
    assert fresh.locator("[data-testid=chat-user]").count() == 0  # a new agent: no conversation yet
    fresh.set_input_files("#state-load-file", str(saved))
    fresh.wait_for_selector("#state-message.ok")
    fresh.wait_for_selector(f"[data-testid=chat-user]:has-text('{asked}')")
    assert fresh.locator("[data-testid=chat-assistant]").count() >= 1
    fresh.screenshot(path=str(artifacts_dir() / "mission-control-after-load.png"), full_page=True)
    context.close()
