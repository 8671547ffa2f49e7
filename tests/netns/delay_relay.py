"""A TCP relay that holds every chunk for a fixed delay, each way: a link's latency where the kernel has no netem.

``python -m tests.netns.delay_relay --listen IP:PORT --to IP:PORT --delay-ms D`` accepts connections on ``--listen``
and opens one to ``--to`` for each; bytes read on one side are written to the other ``D`` ms after they were read,
in order, without waiting for the previous chunk's delay to pass (a pipe of length D, as a wire is, not a stop and
wait). Threads and ``time.sleep`` rather than asyncio: the event loop rounds its timers up to whole milliseconds,
which would turn 0.1 ms into 1 ms. TCP_NODELAY on both sides, so the relay adds no batching of its own; what it
does add (a thread hop, tens of microseconds) is the measurable cost of modelling latency in user space.
"""

from __future__ import annotations

import argparse
import logging
import queue
import socket
import threading
import time

log = logging.getLogger("delay_relay")
CHUNK = 1 << 16


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not IP:PORT")
    return host, int(port)


def _pump(src: socket.socket, dst: socket.socket, delay: float) -> None:
    chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def writer() -> None:
        while True:
            due, data = chunks.get()
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            if not data:
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        # the other side's reader sees EOF and closes its half in turn
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    while True:
        try:
            data = src.recv(CHUNK)
        except OSError:
            data = b""
        chunks.put((time.perf_counter() + delay, data))
        if not data:
            break
    thread.join()


def _serve(client: socket.socket, target: tuple[str, int], delay: float) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError as exc:
        log.warning("cannot reach %s:%d: %s", *target, exc)
        client.close()
        return
    upstream.settimeout(None)
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pump, args=(upstream, client, delay), daemon=True)
    back.start()
    _pump(client, upstream, delay)
    back.join()
    client.close()
    upstream.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--listen", type=_address, required=True, help="IP:PORT to accept connections on")
    parser.add_argument("--to", type=_address, required=True, help="IP:PORT to forward each connection to")
    parser.add_argument("--delay-ms", type=float, required=True, help="delay of every chunk, each way (ms)")
    args = parser.parse_args(argv)
    if not 0 <= args.delay_ms <= 10_000:
        parser.error("--delay-ms must be between 0 and 10000")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with socket.create_server(args.listen, reuse_port=False) as server:
        log.info("relaying %s:%d -> %s:%d, %.3f ms each way", *args.listen, *args.to, args.delay_ms)
        while True:
            client, _ = server.accept()
            threading.Thread(target=_serve, args=(client, args.to, args.delay_ms / 1000), daemon=True).start()


if __name__ == "__main__":
    main()
