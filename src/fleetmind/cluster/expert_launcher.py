"""Launcher of an expert: pick the model it can serve, find its ``ggml-rpc-server`` workers, then run llama-server.

``python -m fleetmind.cluster.expert_launcher --min-workers 2 -- llama-server -m M.gguf --port P ...`` waits until the
registry (Consul or the embedded one, at ``CONSUL_HTTP_ADDR``) reports at least ``--min-workers`` healthy
instances of the ``llamacpp-rpc`` service, then replaces itself (``exec``) with the given llama-server command plus
``--rpc host:port,... -ngl 99``, so the model's layers are spread over the workers and the task's process is
llama-server itself (signals, restarts and logs behave as without the launcher). It is what a Nomad ``template``
stanza rendering the service list would do; fleetmind's job loader has no templates, and a launcher also gives the
design's "basic capability" fallback: if too few workers are healthy within ``--wait`` seconds, or the registry does
not answer, it runs the command unchanged on this machine and says so in the log. jobs/llama-expert.nomad.hcl runs it
when its ``rpc_workers`` variable is above 0. Bad arguments exit with argparse's usage error; everything else falls
back to serving locally rather than failing, so an expert always starts. With ``--fallback-model`` it also applies
:mod:`fleetmind.llm.fallback` first: a main model that cannot be served here is swapped for the light one.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetmind.cluster.client import ClusterClient, RegistryUnavailable, ServiceInstance
from fleetmind.contracts.names import RPC_SERVICE
from fleetmind.llm import fallback

log = logging.getLogger("fleetmind.cluster.expert_launcher")


class ExpertLauncherSettings(BaseSettings):
    """Defaults of the launcher's options (``FLEETMIND_EXPERT_LAUNCHER_*``); the command line overrides them."""

    model_config = SettingsConfigDict(env_prefix="FLEETMIND_EXPERT_LAUNCHER_")

    min_workers: int = 1
    service: str = RPC_SERVICE
    tag: str | None = "rpc"
    wait_s: float = 60.0
    poll_s: float = 1.0
    n_gpu_layers: int = 99


@lru_cache
def get_settings() -> ExpertLauncherSettings:
    return ExpertLauncherSettings()


def endpoint(worker: ServiceInstance) -> str:
    """``host:port`` as llama.cpp's ``--rpc`` wants it."""
    return f"{worker.address}:{worker.port}"


def find_workers(client: ClusterClient, *, service: str, tag: str | None) -> list[ServiceInstance]:
    """Healthy workers, in a stable order (address, port) so a restart splits the layers the same way."""
    found = client.healthy_services(service, tag=tag)
    unique = {endpoint(w): w for w in found}
    return [unique[k] for k in sorted(unique, key=lambda e: (unique[e].address, unique[e].port))]


def wait_for_workers(
    client: ClusterClient,
    *,
    minimum: int,
    timeout_s: float,
    poll_s: float,
    service: str,
    tag: str | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[ServiceInstance]:
    """Every healthy worker once at least ``minimum`` are, or ``[]`` if that does not happen within ``timeout_s``.

    A registry that does not answer counts as "no workers yet": it may be starting alongside the expert.
    """
    if minimum <= 0:
        return []
    deadline = clock() + timeout_s
    last: list[ServiceInstance] = []
    while True:
        try:
            last = find_workers(client, service=service, tag=tag)
        except RegistryUnavailable as exc:
            log.warning("registry not answering yet: %s", exc)
        if len(last) >= minimum:
            return last
        if clock() >= deadline:
            log.warning("found %d healthy %s worker(s) of the %d wanted", len(last), service, minimum)
            return []
        sleep(max(0.0, min(poll_s, deadline - clock())))


def rpc_command(command: Sequence[str], workers: Sequence[ServiceInstance], *, n_gpu_layers: int) -> list[str]:
    """The llama-server command with the workers added (unchanged when there are none)."""
    if not workers:
        return list(command)
    return [*command, "--rpc", ",".join(endpoint(w) for w in workers), "-ngl", str(n_gpu_layers)]


def parse_args(argv: Sequence[str], settings: ExpertLauncherSettings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fleetmind.cluster.expert_launcher",
        description="Run llama-server over ggml-rpc-server workers found in the registry (local fallback).",
        usage="%(prog)s [options] -- LLAMA_SERVER [llama-server args ...]",
    )
    parser.add_argument("--min-workers", type=int, default=settings.min_workers, help="workers needed to split")
    parser.add_argument("--service", default=settings.service, help="registry service of the workers")
    parser.add_argument("--tag", default=settings.tag, help="tag the workers carry ('' for any)")
    parser.add_argument("--wait", type=float, default=settings.wait_s, help="seconds to wait for the workers")
    parser.add_argument("--poll", type=float, default=settings.poll_s, help="seconds between registry queries")
    parser.add_argument("--n-gpu-layers", type=int, default=settings.n_gpu_layers, help="-ngl when splitting")
    parser.add_argument("--consul-addr", default=None, help="registry address (default: CONSUL_HTTP_ADDR)")
    parser.add_argument("--fallback-model", default=None, help="light GGUF served when the main model cannot be")
    parser.add_argument("--state-file", default=None, help="where quick crashes of the main model are counted")
    argv = list(argv)
    if "--" not in argv:
        parser.error("give the llama-server command after --")
    split = argv.index("--")
    args = parser.parse_args(argv[:split])
    args.command = argv[split + 1 :]
    if not args.command:
        parser.error("give the llama-server command after --")
    if args.min_workers < 0 or args.wait < 0 or args.poll <= 0:
        parser.error("--min-workers and --wait must be >= 0 and --poll > 0")
    return args


def plan(args: argparse.Namespace) -> list[str]:
    """Decide what to run: the split command, or the local one with the reason logged."""
    command = list(args.command)
    if args.fallback_model:
        choice = fallback.choose_model(
            fallback.model_of(command),
            args.fallback_model,
            state_file=Path(args.state_file) if args.state_file else None,
            available=fallback.available_memory_bytes(),
        )
        if choice.reason:
            log.warning("serving the fallback model %s: %s", choice.model, choice.reason)
            command = fallback.with_model(command, choice.model)
    if args.min_workers == 0:
        log.info("min-workers is 0: serving on this machine only")
        return command
    with ClusterClient(consul_addr=args.consul_addr) as client:
        log.info(
            "waiting up to %.0fs for %d healthy %s worker(s) in the registry at %s",
            args.wait,
            args.min_workers,
            args.service,
            client.consul_addr,
        )
        workers = wait_for_workers(
            client,
            minimum=args.min_workers,
            timeout_s=args.wait,
            poll_s=args.poll,
            service=args.service,
            tag=args.tag or None,
        )
    if workers:
        log.info("splitting the model over %d RPC worker(s): %s", len(workers), ", ".join(map(endpoint, workers)))
    else:
        log.warning("no RPC workers within %.0fs: starting locally on this machine (basic capability)", args.wait)
    return rpc_command(command, workers, n_gpu_layers=args.n_gpu_layers)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s expert_launcher %(levelname)s %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv, get_settings())
    command = plan(args)
    log.info("exec %s", " ".join(command))
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
