"""Adaptation: search reflection variants against every saved case; keep one only if it passes them all.

A variant is the reflection's prompt (:class:`~fleetmind.supervisor.reflect.Variant`). :func:`evolve` scores the
kept variant (or the baseline) on every case in ``<state>/supervisor/cases/v1/`` against the local llama-server,
then tries ``iterations`` candidates and keeps the best one that passes *every* case, so no saved case can
regress. Per-case results are reported for the baseline and for the kept candidate.

The search engine: when the ``openevolve`` package is installed it runs openevolve's ``run_evolution`` over a
program file holding the variant's two strings in an EVOLVE-BLOCK, with the same llama-server as its LLM and
:func:`score_program` as its evaluator. Without it, fleetmind's own loop in openevolve's spirit runs (labelled
``engine: builtin`` in the report): each generation mutates the best variant so far (hints drawn from the
failing cases, the LLM rewriting the instructions, reordering) and keeps a candidate by its pass count. With the
small packaged model either search may improve nothing; the report says so.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fleetmind.llm.chat import ExpertError, complete_sync
from fleetmind.supervisor import ActionRefused, SupervisorError
from fleetmind.supervisor.actions import parse_decision
from fleetmind.supervisor.cases import HEAL, Case, load_cases
from fleetmind.supervisor.reflect import Reflector, Variant, load_variant, save_variant

Echo = Callable[[str], None]
STATE_ENV, URL_ENV = "FLEETMIND_EVOLVE_STATE_DIR", "FLEETMIND_EVOLVE_LLM_URL"


@dataclass(frozen=True)
class CaseResult:
    case: str
    expected: str
    got: str
    passed: bool


@dataclass
class Report:
    engine: str
    baseline: list[CaseResult]
    best: list[CaseResult]
    kept: Variant | None
    tried: int
    notes: list[str] = field(default_factory=list)

    @staticmethod
    def _count(results: list[CaseResult]) -> str:
        return f"{sum(r.passed for r in results)}/{len(results)}"

    def summary(self) -> str:
        lines = [f"engine: {self.engine}; candidates tried: {self.tried}", "case | expected | baseline | best"]
        for base, best in zip(self.baseline, self.best, strict=True):
            lines.append(
                f"{base.case} | {base.expected} | {base.got} ({'pass' if base.passed else 'FAIL'}) | "
                f"{best.got} ({'pass' if best.passed else 'FAIL'})"
            )
        lines.append(f"baseline passes {self._count(self.baseline)}; best candidate passes {self._count(self.best)}")
        if self.kept is not None:
            lines.append(f"kept variant {self.kept.name!r}: it passes every saved case")
        else:
            lines.append("no variant kept: none passed every saved case (the current reflection stays)")
        lines.extend(self.notes)
        return "\n".join(lines)


def run_case(url: str, variant: Variant, case: Case) -> CaseResult:
    try:
        action = parse_decision(Reflector(url, variant=variant).ask(case.diagnostics), decided_by="llm").action
    except ActionRefused as exc:
        action = f"refused: {str(exc)[:60]}"
    except ExpertError as exc:
        raise SupervisorError(f"the llama-server at {url} failed: {exc}") from exc
    return CaseResult(case.id, case.expected, action, case.passes(action))


def score(url: str, variant: Variant, cases: list[Case]) -> list[CaseResult]:
    return [run_case(url, variant, c) for c in cases]


# -- the builtin search ------------------------------------------------------------------------------------
def _hint(case: Case) -> str:
    fault = case.diagnostics.get("fault") or {}
    summary = str(fault.get("summary") or "")[:80]
    answer = "a healing action such as restart" if case.expected == HEAL else case.expected
    return f"If the fault is {fault.get('kind')} with '{summary}', answer {answer}."


def _rewrite(url: str, variant: Variant) -> Variant | None:
    prompt = (
        "Improve these instructions for choosing a repair action. Keep every action name. Answer with the new "
        f"instructions only.\n\n{variant.instructions}"
    )
    try:
        reply = complete_sync(url, [{"role": "user", "content": prompt}], max_tokens=220, temperature=0.7)
    except ExpertError:
        return None
    text = reply.text.strip()
    return Variant(variant.system, text, f"{variant.name}+rewrite") if len(text) > 40 else None


def _mutate(url: str, best: Variant, failing: list[Case], rng: random.Random, generation: int) -> Variant:
    choice = rng.choice(["hint", "hint", "rewrite", "reorder"]) if failing else rng.choice(["rewrite", "reorder"])
    if choice == "hint" and failing:
        hint = _hint(rng.choice(failing))
        return Variant(best.system, f"{best.instructions}\n{hint}", f"g{generation}-hint")
    if choice == "rewrite":
        rewritten = _rewrite(url, best)
        if rewritten is not None:
            return Variant(rewritten.system, rewritten.instructions, f"g{generation}-rewrite")
    sentences = [s for s in best.instructions.split(". ") if s]
    rng.shuffle(sentences)
    return Variant(best.system, ". ".join(sentences), f"g{generation}-reorder")


def _builtin(url: str, start: Variant, cases: list[Case], iterations: int, seed: int, echo: Echo) -> list[Variant]:
    rng = random.Random(seed)
    best, best_results = start, score(url, start, cases)
    tried = []
    for generation in range(1, iterations + 1):
        failing = [c for c, r in zip(cases, best_results, strict=True) if not r.passed]
        candidate = _mutate(url, best, failing, rng, generation)
        results = score(url, candidate, cases)
        tried.append(candidate)
        passed = sum(r.passed for r in results)
        echo(f"generation {generation}: {candidate.name} passes {passed}/{len(cases)}")
        if passed >= sum(r.passed for r in best_results):
            best, best_results = candidate, results
    return [best, *tried]


# -- openevolve ---------------------------------------------------------------------------------------------
PROGRAM = '''"""A reflection variant for fleetmind's supervisor (evolved by openevolve)."""
# EVOLVE-BLOCK-START
SYSTEM = {system!r}
INSTRUCTIONS = {instructions!r}
# EVOLVE-BLOCK-END
'''


def variant_from_program(code: str, name: str) -> Variant | None:
    """The two strings of a program file, read without running it."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            if isinstance(value, str):
                found[node.targets[0].id] = value
    if "SYSTEM" in found and "INSTRUCTIONS" in found:
        return Variant(found["SYSTEM"], found["INSTRUCTIONS"], name)
    return None


def score_program(program_path: str) -> dict[str, float]:
    """openevolve's evaluator: the share of saved cases a program's variant passes."""
    variant = variant_from_program(Path(program_path).read_text(), "candidate")
    if variant is None:
        return {"combined_score": 0.0, "passes_all": 0.0}
    cases = load_cases(Path(os.environ[STATE_ENV]))
    results = score(os.environ[URL_ENV], variant, cases)
    share = sum(r.passed for r in results) / max(len(results), 1)
    return {"combined_score": share, "passes_all": float(share == 1.0)}


EVALUATOR = """from fleetmind.supervisor.evolve import score_program


def evaluate(program_path):
    return score_program(program_path)
"""


def _openevolve(url: str, state_dir: Path, start: Variant, iterations: int, seed: int) -> list[Variant]:
    from openevolve import run_evolution
    from openevolve.config import Config, LLMModelConfig

    config = Config()
    config.random_seed = seed
    config.max_iterations = iterations
    config.llm.models = [LLMModelConfig(name="local", api_base=url.rstrip("/") + "/v1", api_key="none", weight=1.0)]
    config.llm.temperature = 0.7
    config.llm.max_tokens = 512
    config.llm.timeout = 120
    config.llm.retries = 0  # a small local server that refuses a prompt (context) refuses it again
    config.llm.retry_delay = 1
    config.evaluator.parallel_evaluations = 1
    config.evaluator.cascade_evaluation = False
    os.environ[STATE_ENV], os.environ[URL_ENV] = str(state_dir), url
    with tempfile.TemporaryDirectory(prefix="fleetmind-evolve-") as work, _own_log_handlers():
        evaluator = Path(work) / "evaluator.py"
        evaluator.write_text(EVALUATOR)
        program = PROGRAM.format(system=start.system, instructions=start.instructions)
        result = run_evolution(program, str(evaluator), config=config, iterations=iterations, output_dir=work)
        best = variant_from_program(result.best_code or "", "openevolve-best")
    return [best] if best is not None else []


@contextlib.contextmanager
def _own_log_handlers() -> Iterator[None]:
    """openevolve attaches a file handler (in its output folder) to the process's loggers and leaves it there: every
    later log record of the process would write to a deleted file. Handlers it added are closed and removed."""
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]
    before = {id(h) for lg in loggers for h in lg.handlers}
    try:
        yield
    finally:
        for lg in [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]:
            for handler in [h for h in lg.handlers if id(h) not in before]:
                lg.removeHandler(handler)
                handler.close()


def changed_any(candidates: list[Variant], start: Variant) -> bool:
    return any((c.system, c.instructions) != (start.system, start.instructions) for c in candidates)


def engine_name() -> str:
    try:
        import openevolve  # noqa: F401
    except ImportError:
        return "builtin"
    return "openevolve"


def evolve(
    state_dir: Path, url: str, *, iterations: int = 6, seed: int = 0, echo: Echo = print, engine: str | None = None
) -> Report:
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    cases = load_cases(state_dir)
    if not cases:
        raise SupervisorError(f"no saved cases under {state_dir}/supervisor/cases/v1: nothing to evolve against")
    start = load_variant(state_dir)
    baseline = score(url, start, cases)
    echo(f"{len(cases)} saved cases; {start.name} passes {sum(r.passed for r in baseline)}/{len(cases)}")
    engine = engine or engine_name()
    candidates = (
        _openevolve(url, state_dir, start, iterations, seed)
        if engine == "openevolve"
        else _builtin(url, start, cases, iterations, seed, echo)
    )
    best_results, kept = baseline, None
    for candidate in candidates[:1]:  # the search's best; its results are computed again, once, for the report
        results = score(url, candidate, cases)
        if sum(r.passed for r in results) >= sum(r.passed for r in best_results):
            best_results = results
        changed = (candidate.system, candidate.instructions) != (start.system, start.instructions)
        if all(r.passed for r in results) and changed:
            kept = candidate
            save_variant(state_dir, candidate)
    notes = []
    if kept is None and sum(r.passed for r in best_results) <= sum(r.passed for r in baseline):
        notes.append("the search improved nothing over the current reflection on these cases")
    if engine == "openevolve" and candidates and not changed_any(candidates, start):
        notes.append("openevolve's LLM proposed no usable change to the variant (no valid diff)")
    report = Report(engine, baseline, best_results, kept, iterations, notes)
    (state_dir / "supervisor").mkdir(parents=True, exist_ok=True)
    (state_dir / "supervisor" / "evolve-last.json").write_text(
        json.dumps(
            {"engine": engine, "baseline": [r.__dict__ for r in baseline], "best": [r.__dict__ for r in best_results]}
        )
    )
    return report
