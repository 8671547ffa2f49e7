"""Placement from node facts: the documented table, fed the call-home facts of real machine generations."""

from __future__ import annotations

import pytest

from fleetmind.llm.cpu_variants import VARIANT_FLAGS
from fleetmind.llm.node_class import classify, variant_for

BASE = ["fpu", "sse", "sse2", "ssse3", "sse4_1"]
CORE2_2009 = BASE  # Core 2 Duo E8400: SSE4.1, no SSE4.2
NEHALEM = [*BASE, "sse4_2", "popcnt"]  # SSE4-only: a first-generation Core i7 or a Silvermont Atom
HASWELL_2020 = [*NEHALEM, "avx", "f16c", "fma", "avx2", "bmi2"]  # a 2020 desktop (Comet Lake: AVX2, no AVX-512)
SKYLAKE_X = [*HASWELL_2020, "avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"]
ICELAKE = [*SKYLAKE_X, "avx512vbmi", "avx512_vnni"]


@pytest.mark.parametrize(
    ("flags", "cores", "ram_mb", "cls", "variant", "quant", "role"),
    [
        (CORE2_2009, 2, 3900, "legacy", "x64", "Q4_0", "embedder"),
        (NEHALEM, 4, 7900, "sse42", "sse42", "Q4_0", "embedder"),
        (NEHALEM, 2, 1000, "sse42", "sse42", "Q4_0", "none"),
        ([*NEHALEM, "avx"], 4, 7900, "avx", "sandybridge", "Q4_0", "rpc_worker"),
        (HASWELL_2020, 8, 15900, "avx2", "haswell", "Q4_K_M", "expert"),
        (HASWELL_2020, 2, 3900, "avx2", "haswell", "Q4_K_M", "rpc_worker"),
        (SKYLAKE_X, 8, 31900, "avx512", "skylakex", "Q5_K_M", "expert"),
        (ICELAKE, 16, 64000, "avx512", "icelake", "Q5_K_M", "expert"),
        (ICELAKE, 2, 7900, "avx512", "icelake", "Q5_K_M", "rpc_worker"),
    ],
)
def test_class_build_and_role(
    flags: list[str], cores: int, ram_mb: int, cls: str, variant: str, quant: str, role: str
) -> None:
    p = classify(flags, cores=cores, ram_mb=ram_mb)
    assert (p.node_class, p.variant, p.quant, p.role) == (cls, variant, quant, role), p.reason
    assert p.variant in VARIANT_FLAGS  # always a variant the build contains


def test_a_2009_core2_and_a_2020_desktop_get_different_jobs() -> None:
    old = classify(CORE2_2009, cores=2, ram_mb=4096)
    new = classify(HASWELL_2020, cores=8, ram_mb=16384)
    assert old.role == "embedder" and new.role == "expert"
    assert old.host_vars() == {
        "fleetmind_class": "legacy",
        "fleetmind_workload": "embedder",
        "fleetmind_llama_variant": "x64",
        "fleetmind_quant": "Q4_0",
    }


def test_amx_never_raises_a_class_and_missing_facts_count_as_least() -> None:
    assert variant_for([*HASWELL_2020, "amx_tile", "amx_int8", "amx_bf16"]) == "haswell"
    assert classify([], cores=None, ram_mb=None).role == "none"
    assert classify(["avx512f"], cores=64, ram_mb=1 << 20).node_class == "legacy"  # AVX-512 without SSE4.2: bogus
