"""Text → unit vectors through a ``llama-server --embedding --pooling mean`` serving all-MiniLM-L6-v2.

:class:`LlamaEmbedder` calls the server's OpenAI-compatible ``/v1/embeddings`` and returns float32 rows of unit
length, so inner product is cosine similarity everywhere downstream. :class:`EmbeddingServer` starts such a
server as a child process (converting the packaged model first if needed) for tests, benchmarks and a stack
that has no embedding job of its own; in a cluster the server is a job like any expert and only its URL is
given to the agent.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import aiohttp
import httpx
import numpy as np

from fleetmind.llm import EmbeddingError
from fleetmind.llm.gguf_convert import EMBEDDING_DIM, ensure_gguf
from fleetmind.llm.session import LoopSession
from fleetmind.security.service import SecretSource, bearer

# How long the server's OpenMP threads spin, waiting for more work, once an embedding is done. libgomp's default
# (300,000 turns, ~7 ms of a core here) has them spin on while the expert reads the prompt that the embedding was for:
# one core of two taken from the expert, the whole time. 30,000 (~0.7 ms) still spans the gaps inside one request.
# Measured (python -m bench.llm_gateway's request, two agents on one stack, each with its own embedder, 48 paired
# requests): expert named +17.8 ms TTFT over direct with the default, +11.3 ms with 30,000; an embedding alone took
# the same wall time (6.6 ms) and 10 instead of 18 ms of CPU. 3,000 and 10,000 measured worse (p90 ~21 ms against ~10).
# The experts keep libgomp's default: an expert streamed to a client directly was no faster with 30,000 or 100,000
# (40 paired rounds: TTFT +0.8 and -0.3 ms, decode 0.994x and 1.001x).
# The llama-embedder job (jobs/llama-embedder.nomad.hcl) sets the same; LLVM's OpenMP would ignore it.
SPIN_ENV = {"GOMP_SPINCOUNT": "30000"}


class Embedder(Protocol):
    """Anything that turns texts into an ``(n, dim)`` float32 array of unit rows."""

    dim: int

    async def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


CACHE_SIZE = 256  # recent texts whose vectors are kept (384 floats each)


class LlamaEmbedder:
    """Embeds through llama-server's ``/v1/embeddings``."""

    def __init__(
        self, url: str, *, dim: int = EMBEDDING_DIM, timeout_s: float = 30.0, secret: SecretSource | None = None
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"bad embeddings URL {url!r}: expected http://host:port")
        self.url = url.rstrip("/")
        self.dim = dim
        # every request's query embedding comes through here, before its first token (aiohttp: llm/session.py)
        self._http = LoopSession(aiohttp.ClientTimeout(total=timeout_s))
        # the embedding server runs with the stack's service secret as its API key (security/service.py)
        self._secret = secret or SecretSource()
        # One request embeds its query for recall and again for routing: the second is a cache hit, not a
        # round trip to a server that shares the CPU with the experts.
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vector in zip(missing, await self._fetch(missing), strict=True):
                self._cache[text] = vector
        for text in texts:
            self._cache.move_to_end(text)
        rows = np.stack([self._cache[t] for t in texts])
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return rows

    async def _fetch(self, texts: Sequence[str]) -> np.ndarray:
        body = {"input": list(texts)}
        for attempt in (1, 2):
            try:
                async with self._http.get().post(
                    f"{self.url}/v1/embeddings", json=body, headers=bearer(self._secret.get())
                ) as resp:
                    status, payload = resp.status, await resp.read()
                break
            except aiohttp.ServerDisconnectedError:
                # a kept-alive connection the server closed as it was reused: embedding is idempotent, ask again
                if attempt == 2:
                    raise EmbeddingError("embedding server closed the connection twice") from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise EmbeddingError(f"embedding server could not be reached ({type(exc).__name__})") from exc
        if status != 200:
            text = payload[:300].decode("utf-8", "replace")
            raise EmbeddingError(f"embedding server answered HTTP {status}: {text}")
        try:
            rows = sorted(json.loads(payload)["data"], key=lambda d: d["index"])
            vectors = np.array([row["embedding"] for row in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError("embedding server answered something that is not an embeddings list") from exc
        if vectors.shape != (len(texts), self.dim):
            raise EmbeddingError(f"expected {len(texts)} vectors of {self.dim}, got shape {vectors.shape}")
        return normalize(vectors)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddingServer:
    """A llama-server child process serving the converted MiniLM; ``start()``/``stop()`` or ``with``."""

    def __init__(self, models_dir: Path, *, port: int | None = None, threads: int = 1, log: Path | None = None):
        self.models_dir = models_dir
        self.port = port or free_port()
        self.threads = threads
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        from fleetmind.llm import binaries

        model = ensure_gguf(self.models_dir)
        # One sequence of up to 512 tokens (the model's context); batch = ubatch because BERT is non-causal.
        return [
            str(binaries.llama_server()),
            *("-m", str(model), "--embedding", "--pooling", "mean", "--host", "127.0.0.1", "--port", str(self.port)),
            *("-c", "512", "-b", "512", "-ub", "512", "-t", str(self.threads), "--no-webui"),
        ]

    def start(self, timeout_s: float = 60.0) -> str:
        cmd = self.command()
        out = self.log.open("wb") if self.log else subprocess.DEVNULL
        try:
            self._proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ | SPIN_ENV
            )
        finally:
            if self.log and not isinstance(out, int):
                out.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmbeddingError(f"embedding server exited with {self._proc.returncode} while starting")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self.url
            time.sleep(0.1)
        self.stop()
        raise EmbeddingError(f"embedding server did not become healthy within {timeout_s:g}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def __enter__(self) -> EmbeddingServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def embed_one(embedder: Embedder, text: str) -> np.ndarray:
    """One text's vector, shape ``(dim,)``."""
    return (await embedder.embed([text]))[0]


__all__ = ["Embedder", "EmbeddingServer", "LlamaEmbedder", "embed_one", "normalize"]
