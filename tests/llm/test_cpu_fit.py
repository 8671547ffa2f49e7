"""A llama.cpp build is proven by generating tokens, and a CPU variant this machine cannot run is set aside.

The installed build's programs and CPU variants are copied into a folder of the test's, beside one more variant
compiled here: ``libggml-cpu-sapphirerapids.so``, which scores above every real one (as the AMX variant does on a
CPU that advertises AMX), hands ggml a real CPU backend, and then runs AMX's ``tilezero`` without asking the kernel
for the tile state: SIGILL, exactly what the AMX build did on a VM that advertises AMX.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fleetmind.llm import binaries
from fleetmind.llm.cpu_fit import RECORD, SET_ASIDE, BuildUnfitError, cpu_info, expected_variant, prove
from fleetmind.llm.cpu_variants import VARIANT_FLAGS, VariantListError, cut_variants

FAKE_AMX = r"""
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>
typedef void * (*init_fn)(void);
static void * tile(void * arg) {
    (void) arg;
    usleep(50000);
    __asm__ volatile (".byte 0xc4, 0xe2, 0x7b, 0x49, 0xc0");  /* tilezero tmm0, with no XTILEDATA permission */
    return 0;
}
int ggml_backend_score(void) { return 1 << 20; }
void * ggml_backend_init(void) {
    void * real = dlopen(REAL, RTLD_NOW | RTLD_LOCAL);
    if (!real) return 0;
    pthread_t t;
    pthread_create(&t, 0, tile, 0);
    return ((init_fn) dlsym(real, "ggml_backend_init"))();
}
"""


def _copy_build(dest: Path) -> list[str]:
    src = binaries.bin_dir()
    variants = sorted(p.name for p in src.glob("libggml-cpu-*.so"))
    if not variants:
        pytest.skip("the installed llama.cpp has no runtime CPU dispatch (FLEETMIND_LLAMA_BIN_DIR build)")
    dest.mkdir()
    for path in [src / "llama-server", *src.glob("*.so*")]:
        shutil.copy2(path, dest / path.name)
    return variants


def _fake_amx_variant(bin_dir: Path, real_variant: Path) -> None:
    hidden = bin_dir / "real"
    hidden.mkdir()
    shutil.copy2(real_variant, hidden / "cpu.so")
    source = bin_dir.parent / "fake_amx.c"
    source.write_text(FAKE_AMX)
    subprocess.run(
        ["cc", "-shared", "-fPIC", f'-DREAL="{hidden / "cpu.so"}"', "-o", bin_dir / "libggml-cpu-sapphirerapids.so",
         source, "-ldl", "-lpthread"],
        check=True,
    )  # fmt: skip


def test_a_variant_that_dies_by_sigill_is_set_aside_and_the_next_one_proven(tiny_model: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    variants = _copy_build(bin_dir)
    _fake_amx_variant(bin_dir, bin_dir / variants[0])  # any real variant hands ggml a real backend

    proof = prove(tiny_model, bin_dir=bin_dir, timeout_s=60)

    assert proof.set_aside["sapphirerapids"] == "killed by SIGILL on this CPU"
    assert (bin_dir / SET_ASIDE / "libggml-cpu-sapphirerapids.so").is_file()
    assert not (bin_dir / "libggml-cpu-sapphirerapids.so").exists()
    # ggml then loaded the best real variant for this CPU, the one our table says it should, and it was timed first
    # beside the next ones; a variant that outscores the fastest by features but is clearly slower is set aside too.
    built = [v.removeprefix("libggml-cpu-").removesuffix(".so") for v in variants]
    if len(built) == 1:  # a build cut to one variant (pytest --llama-cpu-variant): nothing to time it against
        assert proof.variant == built[0] and proof.measured == {}
    else:
        order = list(proof.measured)
        assert order[0] == expected_variant(cpu_info(), built) and len(order) >= 2
        assert all(tps > 0 for tps in proof.measured.values())
        slower = {v: why for v, why in proof.set_aside.items() if v != "sapphirerapids"}
        assert all(why.startswith("slower here:") for why in slower.values())
        assert list(slower) == order[: order.index(proof.variant)]  # exactly the variants above the one kept
        assert all((bin_dir / SET_ASIDE / f"libggml-cpu-{v}.so").is_file() for v in slower)
    assert proof.tokens >= 1 and proof.tokens_per_s > 0
    assert not (bin_dir / "variants-being-measured").exists()  # every timed variant was put back
    record = json.loads((bin_dir / RECORD).read_text())
    assert record["variant"] == proof.variant and record["set_aside"] == proof.set_aside
    assert "set aside sapphirerapids: killed by SIGILL" in proof.summary()


def test_a_build_no_variant_of_which_runs_is_refused_with_the_cpu_features(tiny_model: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _copy_build(bin_dir)
    real = bin_dir / "real-cpu.so"
    shutil.move(bin_dir / next(p.name for p in bin_dir.glob("libggml-cpu-*.so")), real)
    for lib in bin_dir.glob("libggml-cpu-*.so"):
        lib.unlink()
    _fake_amx_variant(bin_dir, real)

    with pytest.raises(BuildUnfitError) as err:
        prove(tiny_model, bin_dir=bin_dir, timeout_s=60)
    message = str(err.value)
    assert "does not run on this CPU" in message
    assert "sapphirerapids: killed by SIGILL (illegal instruction" in message
    assert cpu_info().model in message and "sse4_2" in message  # what the CPU reports
    assert "needs at least x86-64 with SSE2" in message
    assert not (bin_dir / RECORD).exists()


CMAKE_EXCERPT = """
if (GGML_CPU_ALL_VARIANTS)
    if (GGML_SYSTEM_ARCH STREQUAL "x86")
        ggml_add_cpu_backend_variant(x64)
        ggml_add_cpu_backend_variant(sse42              SSE42)
        ggml_add_cpu_backend_variant(sandybridge        SSE42 AVX)
        if (NOT MSVC)
            ggml_add_cpu_backend_variant(ivybridge      SSE42 AVX F16C)
        endif()
        ggml_add_cpu_backend_variant(haswell            SSE42 AVX F16C FMA AVX2 BMI2)
        ggml_add_cpu_backend_variant(skylakex           SSE42 AVX F16C FMA AVX2 BMI2 AVX512)
        ggml_add_cpu_backend_variant(icelake            SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VBMI AVX512_VNNI)
        if (NOT MSVC)
            ggml_add_cpu_backend_variant(sapphirerapids SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AMX_TILE AMX_INT8)
        endif()
    elseif(GGML_SYSTEM_ARCH STREQUAL "ARM")
        ggml_add_cpu_backend_variant(armv8.0_1)
    endif()
endif()
"""


def test_the_variant_list_is_cut_to_ours_and_never_keeps_amx() -> None:
    cut = cut_variants(CMAKE_EXCERPT, list(VARIANT_FLAGS))
    kept = [line.split("(")[1].split()[0].rstrip(")") for line in cut.splitlines() if line.strip().startswith("ggml_")]
    assert kept == ["x64", "sse42", "sandybridge", "haswell", "skylakex", "icelake", "armv8.0_1"]  # ARM untouched
    assert "# (left out by fleetmind) ggml_add_cpu_backend_variant(sapphirerapids" in cut
    with pytest.raises(VariantListError, match="unknown CPU variants"):
        cut_variants(CMAKE_EXCERPT, ["x64", "sapphirerapids"])
    with pytest.raises(VariantListError, match="no x86 block"):
        cut_variants("project(ggml)", ["x64"])


def test_expected_variant_follows_the_cpu_flags(tmp_path: Path) -> None:
    core2 = tmp_path / "core2"
    core2.write_text("model name\t: Intel(R) Core(TM)2 Duo CPU E8400\nflags\t\t: fpu sse sse2 ssse3 sse4_1\n")
    xeon = tmp_path / "xeon"
    xeon.write_text(
        "model name\t: Intel(R) Xeon(R) Processor\nflags\t\t: sse4_2 avx f16c fma avx2 bmi2 avx512f avx512cd "
        "avx512vl avx512dq avx512bw avx512vbmi avx512_vnni amx_tile amx_int8\n"
    )
    built = list(VARIANT_FLAGS)
    assert expected_variant(cpu_info(core2), built) == "x64"
    assert cpu_info(core2).model == "Intel(R) Core(TM)2 Duo CPU E8400"
    assert expected_variant(cpu_info(xeon), built) == "icelake"  # never an AMX variant: none is built
    assert "amx_tile" in cpu_info(xeon).notable


# A stand-in llama-server for the timing rule alone (real servers' speeds differ by noise, not by design): it "loads"
# the best variant present beside it, as ggml's dispatch does, and reports that variant's decode speed from a table.
# Each start is logged to starts.log; a variant named in sigill.txt dies by SIGILL once loaded; a start while another
# instance of the same folder runs logs "overlap" (two proofs at once).
STAND_IN = r"""#!{python}
import json, os, pathlib, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
here = pathlib.Path(sys.argv[0]).resolve().parent
order = ["x64", "sse42", "sandybridge", "haswell", "skylakex", "icelake"]
speed = {{"icelake": 50.0, "skylakex": 60.0, "haswell": 100.0, "sandybridge": 70.0, "sse42": 40.0, "x64": 20.0}}
best = [v for v in order if (here / f"libggml-cpu-{{v}}.so").exists()][-1]
running = here / "running"
try:
    os.close(os.open(running, os.O_CREAT | os.O_EXCL))
    overlap = ""
except FileExistsError:
    overlap = " overlap"
with open(here / "starts.log", "a") as log:
    log.write(best + overlap + "\n")
def leave(*_):
    running.unlink(missing_ok=True)
    os._exit(0)
signal.signal(signal.SIGTERM, leave)
print(f"load_backend: loaded CPU backend from {{here}}/libggml-cpu-{{best}}.so", file=sys.stderr, flush=True)
dying = (here / "sigill.txt").read_text().split() if (here / "sigill.txt").exists() else []
if best in dying:
    running.unlink(missing_ok=True)
    signal.signal(signal.SIGILL, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGILL)
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers()
        self.wfile.write(data)
    def do_GET(self): self.reply({{"status": "ok"}})
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.reply({{"tokens_predicted": 8, "timings": {{"predicted_per_second": speed[best]}}}})
HTTPServer(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])), H).serve_forever()
"""


def _stand_in_build(
    bin_dir: Path, variants: tuple[str, ...] = ("sandybridge", "haswell", "skylakex", "icelake")
) -> None:
    import sys

    bin_dir.mkdir()
    (bin_dir / "llama-server").write_text(STAND_IN.format(python=sys.executable))
    (bin_dir / "llama-server").chmod(0o755)
    for variant in ("sandybridge", "haswell", "skylakex", "icelake"):
        (bin_dir / f"libggml-cpu-{variant}.so").write_bytes(b"")


def _starts(bin_dir: Path) -> list[str]:
    log = bin_dir / "starts.log"
    return log.read_text().splitlines() if log.exists() else []


def _present(bin_dir: Path) -> list[str]:
    return sorted(p.name.removeprefix("libggml-cpu-").removesuffix(".so") for p in bin_dir.glob("libggml-cpu-*.so"))


def test_a_variant_that_outscores_a_clearly_faster_one_is_set_aside(tiny_model: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _stand_in_build(bin_dir)

    proof = prove(tiny_model, bin_dir=bin_dir, timeout_s=30)

    # Timed from the best-scoring down (three of them), each variant's best round counted.
    assert proof.measured == {"icelake": 50.0, "skylakex": 60.0, "haswell": 100.0}
    assert proof.variant == "haswell" and proof.tokens_per_s == 100.0
    assert proof.set_aside == {
        "icelake": "slower here: 50 < 100 tokens/s",
        "skylakex": "slower here: 60 < 100 tokens/s",
    }
    assert sorted(p.name for p in bin_dir.glob("libggml-cpu-*.so")) == [
        "libggml-cpu-haswell.so",
        "libggml-cpu-sandybridge.so",
    ]
    # A second proof starts from every variant again and comes to the same choice.
    again = prove(tiny_model, bin_dir=bin_dir, timeout_s=30)
    assert again.variant == "haswell" and again.set_aside == proof.set_aside


def test_a_prove_only_keeps_the_install_speed_choice_and_sets_aside_only_what_dies(
    tiny_model: Path, tmp_path: Path
) -> None:
    """What the supervisor's SIGILL heal runs: nothing is re-timed, what the install set aside as slower stays aside
    with its reason, and only the variant that now dies by SIGILL goes (here: the chosen one, as on a VM that moved
    to a host without AVX2)."""
    bin_dir = tmp_path / "bin"
    _stand_in_build(bin_dir)
    install = prove(tiny_model, bin_dir=bin_dir, timeout_s=30)
    assert install.variant == "haswell" and set(install.set_aside) == {"icelake", "skylakex"}
    (bin_dir / "starts.log").unlink()

    healthy = prove(tiny_model, bin_dir=bin_dir, timeout_s=30, measure=False)
    assert _starts(bin_dir) == ["haswell"]  # one start, no timing rounds
    assert healthy.variant == "haswell" and healthy.set_aside == install.set_aside
    assert healthy.measured == install.measured  # the install's timings, not new ones
    assert _present(bin_dir) == ["haswell", "sandybridge"]

    (bin_dir / "starts.log").unlink()
    (bin_dir / "sigill.txt").write_text("haswell")
    healed = prove(tiny_model, bin_dir=bin_dir, timeout_s=30, measure=False)
    assert _starts(bin_dir) == ["haswell", "sandybridge"]  # the dying one, then the next; nothing timed
    assert healed.variant == "sandybridge"
    assert healed.set_aside == {**install.set_aside, "haswell": "killed by SIGILL on this CPU"}
    assert _present(bin_dir) == ["sandybridge"]
    record = json.loads((bin_dir / RECORD).read_text())
    assert record["set_aside"]["skylakex"] == "slower here: 60 < 100 tokens/s"  # the install's reason stands
    assert record["measured"] == install.measured and record["variant"] == "sandybridge"


def test_a_prove_only_puts_back_what_an_interrupted_measurement_hid(tiny_model: Path, tmp_path: Path) -> None:
    """A full proof killed while timing leaves the higher variants hidden; hiding was never a choice."""
    bin_dir = tmp_path / "bin"
    _stand_in_build(bin_dir)
    hidden = bin_dir / "variants-being-measured"
    hidden.mkdir()
    for variant in ("skylakex", "icelake"):
        (bin_dir / f"libggml-cpu-{variant}.so").rename(hidden / f"libggml-cpu-{variant}.so")

    result = prove(tiny_model, bin_dir=bin_dir, timeout_s=30, measure=False)

    assert result.variant == "icelake" and result.set_aside == {} and result.measured == {}
    assert _present(bin_dir) == ["haswell", "icelake", "sandybridge", "skylakex"] and not hidden.exists()


def test_proofs_of_one_build_folder_take_turns(tiny_model: Path, tmp_path: Path) -> None:
    """Two experts of one build that both die by SIGILL heal at once: the proofs hold the folder's lock in turn."""
    import threading

    from fleetmind.llm import proof as raw

    bin_dir = tmp_path / "bin"
    _stand_in_build(bin_dir)
    (bin_dir / "sigill.txt").write_text("icelake")
    with raw.lock(bin_dir), pytest.raises(raw.ProofBusyError, match="another proof of"):
        raw.prove(bin_dir, tiny_model, timeout_s=30, measure=False, wait_s=0.5)
    assert _starts(bin_dir) == []  # it waited for the lock and never touched the folder

    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(prove(tiny_model, bin_dir=bin_dir, timeout_s=30, measure=False)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 2
    starts = _starts(bin_dir)
    assert not any("overlap" in s for s in starts), starts  # never two servers of one folder at once
    # the first set icelake aside; the second found it gone and proved the next one in one start
    assert starts == ["icelake", "skylakex", "skylakex"]
    assert _present(bin_dir) == ["haswell", "sandybridge", "skylakex"]
    assert json.loads((bin_dir / RECORD).read_text())["set_aside"] == {"icelake": "killed by SIGILL on this CPU"}
