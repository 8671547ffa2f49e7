"""Which of ggml's x86 CPU variants fleetmind builds, and what each one needs of the CPU.

ggml's runtime CPU dispatch (``GGML_BACKEND_DL`` + ``GGML_CPU_ALL_VARIANTS``) builds one ``libggml-cpu-<variant>.so``
per CPU generation; at start, llama.cpp scores every variant by the CPU's ``cpuid`` bits and loads the best. ggml
checks only ``cpuid``, not what the OS grants (its own source says so), so a VM that advertises AMX gets the AMX
variant and dies with SIGILL. fleetmind therefore builds :data:`DEFAULT_VARIANTS`, without the AMX variant, and
:mod:`fleetmind.llm.cpu_fit` proves the chosen variant by generating tokens before the build counts as installed.

``python -m fleetmind.llm.cpu_variants cut CMakeLists.txt VARIANT...`` cuts ggml's x86 list to the named variants
before a build (the build script uses it; the variant list is part of the build cache key).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Variant → the /proc/cpuinfo flags it needs (ggml's feature names mapped to the kernel's). In dispatch order:
# ggml picks the highest score, and each variant here needs every feature of the one before it.
VARIANT_FLAGS: dict[str, tuple[str, ...]] = {
    "x64": (),
    "sse42": ("sse4_2",),
    "sandybridge": ("sse4_2", "avx"),
    "haswell": ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2"),
    "skylakex": ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512f", "avx512cd", "avx512vl", "avx512dq",
                 "avx512bw"),
    "icelake": ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512f", "avx512cd", "avx512vl", "avx512dq",
                "avx512bw", "avx512vbmi", "avx512_vnni"),
}  # fmt: skip
# x64 is SSE2 only: a 2009 Core 2 (SSSE3, no SSE4.2) and a first Atom run it. sse42 is Nehalem; sandybridge adds
# AVX; haswell AVX2/FMA; skylakex AVX-512; icelake AVX-512 VBMI/VNNI. Left out: the AMX variant (sapphirerapids),
# and ivybridge, piledriver, cannonlake, cascadelake, cooperlake, zen4, alderlake, each a small step from a kept one.
DEFAULT_VARIANTS: tuple[str, ...] = tuple(VARIANT_FLAGS)
AMX_VARIANTS = frozenset({"sapphirerapids"})

_X86_BLOCK = re.compile(
    r'(if \(GGML_CPU_ALL_VARIANTS\).*?if \(GGML_SYSTEM_ARCH STREQUAL "x86"\)\n)(.*?)(\n\s*elseif)', re.DOTALL
)
_VARIANT_LINE = re.compile(r"^\s*ggml_add_cpu_backend_variant\((\S+?)[\s)]", re.MULTILINE)


class VariantListError(ValueError):
    """The CMake file does not hold the variant list this module knows how to cut."""


def cut_variants(cmake_text: str, keep: list[str] | tuple[str, ...]) -> str:
    """Comment out every x86 ``ggml_add_cpu_backend_variant`` line whose variant is not in ``keep``."""
    unknown = set(keep) - set(VARIANT_FLAGS)
    if unknown:
        raise VariantListError(f"unknown CPU variants {sorted(unknown)}; known: {', '.join(VARIANT_FLAGS)}")
    match = _X86_BLOCK.search(cmake_text)
    if match is None:
        raise VariantListError("no x86 block of GGML_CPU_ALL_VARIANTS found: has the llama.cpp source changed?")
    block = match.group(2)
    found = {m.group(1) for m in _VARIANT_LINE.finditer(block)}
    missing = set(keep) - found
    if missing:
        raise VariantListError(f"the llama.cpp source has no CPU variants {sorted(missing)}")

    new_block = re.sub(
        r"^\s*ggml_add_cpu_backend_variant\((\S+?)[\s)].*$",
        lambda m: m.group(0) if m.group(1) in keep else "# (left out by fleetmind) " + m.group(0).strip(),
        block,
        flags=re.MULTILINE,
    )
    return cmake_text[: match.start(2)] + new_block + cmake_text[match.end(2) :]


def variant_of(library: str) -> str:
    """``.../libggml-cpu-haswell.so`` → ``haswell``."""
    name = Path(library).name
    return name.removeprefix("libggml-cpu-").removesuffix(".so")


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "cut":
        print("usage: python -m fleetmind.llm.cpu_variants cut CMakeLists.txt VARIANT...", file=sys.stderr)
        return 2
    path = Path(argv[1])
    keep = argv[2:]
    try:
        path.write_text(cut_variants(path.read_text(), keep))
    except (OSError, VariantListError) as exc:
        print(f"cpu_variants: {exc}", file=sys.stderr)
        return 1
    print(f"llama.cpp: CPU variants built: {' '.join(keep)} (AMX variants left out)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
