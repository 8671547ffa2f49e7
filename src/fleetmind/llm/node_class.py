"""Placement from node facts: what a machine that called home is good for, decided from what it reported.

A node's call-home facts (CPU flags from ``/proc/cpuinfo``, cores, RAM) give it a *class* (its CPU tier), the
llama.cpp CPU *variant* ggml's dispatch will load on it (:data:`fleetmind.llm.cpu_variants.VARIANT_FLAGS`), the
*quantisation* its models should use and its *role* in the cluster. The provisioning API writes the result into
the inventory (``fleetmind_class``, ``fleetmind_workload`` for the role, since ``fleetmind_role`` already names the
node's inventory group, ``fleetmind_llama_variant``, ``fleetmind_quant``) and the Nomad client role puts class and
workload into the node's ``meta``, where job constraints can read them. RAM is nominal: a "4 GB" machine reports a
little less in MemTotal, so the thresholds sit just under 16, 8, 4 and 2 GB.

=========  =====================================  ===========  ========  ==========================================
class      CPU flags (all of)                     variant      quant     role
=========  =====================================  ===========  ========  ==========================================
avx512     skylakex set (avx512f/cd/vl/dq/bw)     skylakex or  Q5_K_M    expert with >= 16 GB and >= 4 cores,
                                                  icelake                else as avx2
avx2       haswell set (avx2, fma, f16c, bmi2)    haswell      Q4_K_M    expert with >= 8 GB and >= 4 cores,
                                                                         rpc worker with >= 4 GB, else embedder
avx        sandybridge set (avx, sse4_2)          sandybridge  Q4_0      rpc worker with >= 4 GB, else embedder
sse42      sse4_2                                 sse42        Q4_0      embedder with >= 2 GB, else none
legacy     none of these (a 2009 Core 2: SSSE3,   x64          Q4_0      embedder with >= 2 GB, else none
           SSE4.1, no SSE4.2)
=========  =====================================  ===========  ========  ==========================================

``icelake`` is chosen over ``skylakex`` when ``avx512vbmi`` and ``avx512_vnni`` are reported too. Roles: an
*expert* serves a whole model (llama-server); an *rpc worker* (ggml-rpc-server) holds layers of a model split over
several machines; an *embedder* serves the small embedding model; *none* runs nothing heavy (it can still run the
agent's light jobs). Q4_0 on the older tiers because its kernels need no AVX2; the K-quants pay off with AVX2.

Whether the OS grants a feature: Linux lists AVX and AVX-512 in ``/proc/cpuinfo`` only when it enables their
register state in XCR0 (it clears a feature whose XSAVE state it does not manage), so a listed flag is granted.
AMX is different: a process must ask for it (``arch_prctl(ARCH_REQ_XCOMP_PERM)``), and VMs advertise AMX they do
not grant; AMX flags never raise a class, and no AMX variant is built (see :mod:`fleetmind.llm.cpu_variants`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from fleetmind.llm.cpu_variants import VARIANT_FLAGS

Role = Literal["expert", "rpc_worker", "embedder", "none"]
CLASSES: tuple[str, ...] = ("avx512", "avx2", "avx", "sse42", "legacy")
AMX_FLAGS = frozenset({"amx_tile", "amx_int8", "amx_bf16", "amx_fp16", "amx_complex"})
# a CPU tier's variant needs every flag of the variant before it, so the best match is the last that fits
_TIER_OF_VARIANT = {
    "icelake": "avx512",
    "skylakex": "avx512",
    "haswell": "avx2",
    "sandybridge": "avx",
    "sse42": "sse42",
}
_QUANT = {"avx512": "Q5_K_M", "avx2": "Q4_K_M", "avx": "Q4_0", "sse42": "Q4_0", "legacy": "Q4_0"}


@dataclass(frozen=True)
class Placement:
    node_class: str
    variant: str
    quant: str
    role: Role
    reason: str

    def host_vars(self) -> dict[str, str]:
        """What the provisioning API writes for the node into the inventory."""
        return {
            "fleetmind_class": self.node_class,
            "fleetmind_workload": self.role,
            "fleetmind_llama_variant": self.variant,
            "fleetmind_quant": self.quant,
        }


def variant_for(flags: Iterable[str]) -> str:
    """The llama.cpp CPU variant ggml's dispatch loads for these flags (AMX flags are never counted)."""
    have = set(flags) - AMX_FLAGS
    fitting = [v for v, need in VARIANT_FLAGS.items() if set(need) <= have]
    return fitting[-1] if fitting else "x64"


def classify(flags: Iterable[str], *, cores: int | None, ram_mb: int | None) -> Placement:
    """Class, variant, quantisation and role of a node from its call-home facts (missing facts count as least)."""
    variant = variant_for(flags)
    tier = _TIER_OF_VARIANT.get(variant, "legacy")
    cores_n, ram_gb = cores or 1, (ram_mb or 0) / 1024
    role: Role
    if tier == "avx512" and ram_gb >= 15 and cores_n >= 4:
        role, why = "expert", "AVX-512 with room for a whole model"
    elif tier in ("avx512", "avx2") and ram_gb >= 7.5 and cores_n >= 4:
        role, why = "expert", "AVX2 with room for a whole model"
    elif tier in ("avx512", "avx2", "avx") and ram_gb >= 3.5:
        role, why = "rpc_worker", "AVX with enough memory to hold layers of a split model"
    elif ram_gb >= 1.8:
        role, why = "embedder", "too slow or too small for a chat model; the small embedding model fits"
    else:
        role, why = "none", "too little memory for any model"
    reason = f"{tier}: variant {variant}, {cores_n} cores, {ram_gb:.1f} GB: {why}"
    return Placement(node_class=tier, variant=variant, quant=_QUANT[tier], role=role, reason=reason)
