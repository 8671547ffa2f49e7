"""Prove that the installed llama.cpp build runs on this CPU, and set aside CPU variants that do not.

A build counts as installed only once it has loaded a real model and generated tokens: ``--version`` proves the
program links, not that its kernels run. ggml's runtime dispatch picks a ``libggml-cpu-<variant>.so`` by the CPU's
``cpuid`` bits alone, so a CPU (or VM) that advertises features the OS does not grant gets a variant that dies with
SIGILL. :func:`prove` starts ``llama-server`` on a loopback port, asks for a few tokens, and when the server dies
by a signal it moves the variant that was loaded into ``<bin>/variants-set-aside/`` and tries again with the next
best one. What it chose, and why, goes to ``<bin>/cpu_fit.json`` and to the log.

``python -m fleetmind.llm.cpu_fit prove [--model M]`` is the last step of ``make llama``; ``show`` prints the record.
``prove --only`` proves without timing: it keeps what was set aside and the variant chosen for speed at install, and
sets aside only what dies (what the supervisor runs when a llama.cpp expert dies by SIGILL).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fleetmind.exits import describe_exit
from fleetmind.llm import BinaryMissingError, LlmError, binaries, proof
from fleetmind.llm.cpu_variants import AMX_VARIANTS, VARIANT_FLAGS

RECORD = "cpu_fit.json"
SET_ASIDE = proof.SET_ASIDE
# The flags worth naming when a build does not fit: what the variants need, and what VMs tend to over-advertise.
_NOTABLE = (
    "ssse3",
    "sse4_1",
    *dict.fromkeys(f for flags in VARIANT_FLAGS.values() for f in flags),
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)


class BuildUnfitError(BinaryMissingError):
    """The llama.cpp build does not run on this CPU (the message names what the CPU reports and what failed)."""


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]

    @property
    def notable(self) -> list[str]:
        return [f for f in _NOTABLE if f in self.flags]


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """The CPU's model name and the feature flags the kernel reports for it."""
    return CpuInfo(*proof.cpu_flags(cpuinfo))


def expected_variant(cpu: CpuInfo, available: list[str]) -> str | None:
    """The variant ggml's dispatch should pick: the last (best) of ``available`` whose flags the CPU reports."""
    fitting = [v for v in VARIANT_FLAGS if v in available and set(VARIANT_FLAGS[v]) <= cpu.flags]
    return fitting[-1] if fitting else None


@dataclass
class Proof:
    variant: str | None  # None: a build without runtime dispatch (one libggml-cpu)
    tokens: int
    tokens_per_s: float
    model: str
    cpu: str
    flags: list[str]
    set_aside: dict[str, str] = field(default_factory=dict)
    variants: list[str] = field(default_factory=list)
    measured: dict[str, float] = field(default_factory=dict)
    proved_at: str = ""

    def summary(self) -> str:
        head = f"llama.cpp: proven on {self.cpu}: {self.tokens} tokens at {self.tokens_per_s:.0f} tokens/s"
        if self.variant is None:
            return head + " (a build without runtime CPU dispatch)"
        why = (
            f"; CPU variant {self.variant!r} chosen: the best of {', '.join(self.variants)} whose features this CPU "
            f"reports ({' '.join(VARIANT_FLAGS.get(self.variant, ())) or 'SSE2 only'}), that ran and was fastest"
        )
        timed = ", ".join(f"{v} {tps:.0f}" for v, tps in self.measured.items())
        timed = f"; decode tokens/s measured here: {timed}" if timed else ""
        aside = "".join(f"; set aside {v}: {reason}" for v, reason in self.set_aside.items())
        return head + why + timed + aside + f" (AMX variants {', '.join(sorted(AMX_VARIANTS))} are never built)"


def prove(model: Path, *, bin_dir: Path | None = None, timeout_s: float = 120.0, measure: bool = True) -> Proof:
    """Generate tokens with the build; set aside variants that die by SIGILL; record the result. Raises
    BuildUnfitError (the message names what the CPU reports and how each try ended), or
    :class:`~fleetmind.llm.proof.ProofBusyError` when another proof of the folder does not finish in time.

    ``measure=False`` only proves (the supervisor's heal): what earlier proofs set aside stays aside, nothing is
    timed, and the record keeps the install's timings and reasons beside the new set-asides. The folder's proof lock
    is held from the proof to the written record, so two proofs never interleave their moves or records."""
    bin_dir = bin_dir or binaries.bin_dir()
    with proof.lock(bin_dir):
        return _prove_locked(model, bin_dir, timeout_s=timeout_s, measure=measure)


def _prove_locked(model: Path, bin_dir: Path, *, timeout_s: float, measure: bool) -> Proof:
    built = proof.variants(bin_dir) + sorted(proof.variant_of(p.name) for p in (bin_dir / SET_ASIDE).glob("*.so"))
    earlier = None if measure else load_record(bin_dir)
    result = proof.prove(bin_dir, model, timeout_s=timeout_s, measure=measure, lock_held=True)
    cpu = cpu_info()
    if not result.ok:
        (bin_dir / RECORD).unlink(missing_ok=True)
        tries = "; ".join(
            f"{what}: {describe_exit(0 if code < 0 else code, -code if code < 0 else 0)}"
            for what, code in result.failures
        )
        last = " | ".join(result.last_stderr.splitlines()[-3:])
        raise BuildUnfitError(
            f"the llama.cpp build in {bin_dir} does not run on this CPU ({cpu.model}; it reports "
            f"{' '.join(cpu.notable) or 'no SSE4.2/AVX features'}): {tries}; last output: {last}. Every fleetmind "
            "build needs at least x86-64 with SSE2 (CPU variant x64); the variants built here: "
            f"{', '.join(sorted(set(built))) or 'none (no runtime dispatch)'}. Rebuild with `make llama`."
        )
    set_aside = {
        v: why if why.startswith("slower") else f"killed by {why} on this CPU" for v, why in result.set_aside.items()
    }
    measured = result.measured
    if earlier is not None:  # a heal: the install's reasons for what is still aside, and its timings, stand
        still_aside = {proof.variant_of(p.name) for p in (bin_dir / SET_ASIDE).glob("libggml-cpu-*.so")}
        kept, timed = earlier.get("set_aside"), earlier.get("measured")
        kept = kept if isinstance(kept, dict) else {}
        set_aside = {**{str(v): str(w) for v, w in kept.items() if v in still_aside}, **set_aside}
        measured = {str(v): float(t) for v, t in timed.items()} if isinstance(timed, dict) else {}
    record = Proof(
        variant=result.variant,
        tokens=result.tokens,
        tokens_per_s=result.tokens_per_s,
        model=str(model),
        cpu=cpu.model,
        flags=cpu.notable,
        set_aside=set_aside,
        measured=measured,
        variants=[v for v in VARIANT_FLAGS if v in built],
        proved_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    # Written whole, then renamed over the old record: a reader (doctor, the supervisor) never sees half of it.
    partial = bin_dir / f".{RECORD}.partial"
    partial.write_text(json.dumps(asdict(record), indent=2) + "\n")
    os.replace(partial, bin_dir / RECORD)
    return record


def load_record(bin_dir: Path | None = None) -> dict[str, object] | None:
    """What the last proof recorded, or None if this build was never proven."""
    try:
        path = (bin_dir or binaries.bin_dir()) / RECORD
        data = json.loads(path.read_text())
    except (OSError, ValueError, LlmError):
        return None
    return data if isinstance(data, dict) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetmind.llm.cpu_fit", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prove", help="generate tokens with the installed build; set aside variants that crash")
    p.add_argument("--model", help="GGUF model to prove with (default: the packaged chat model)")
    p.add_argument("--bin-dir", type=Path, help="folder of the llama.cpp programs (default: the installed build)")
    p.add_argument("--only", action="store_true", help="prove only: keep the install's speed choice, time nothing")
    sub.add_parser("show", help="print what the last proof recorded")
    args = parser.parse_args(argv)
    if args.command == "show":
        shown = load_record()
        print(json.dumps(shown, indent=2) if shown else "this llama.cpp build was never proven: run `make llama`")
        return 0 if shown else 1
    from fleetmind.llm.models import DEFAULT_MODEL, resolve

    try:
        model = resolve(args.model or DEFAULT_MODEL)
        record = prove(model, bin_dir=args.bin_dir, measure=not args.only)
    except (LlmError, proof.ProofBusyError) as exc:
        print(f"llama.cpp: NOT installed: {exc}", file=sys.stderr)
        return 1
    print(record.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
