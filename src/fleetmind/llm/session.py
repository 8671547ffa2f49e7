"""The HTTP session the hot paths to llama-server use: aiohttp, one session per event loop.

Every answer streams through :class:`~fleetmind.llm.chat.ExpertClient` and every request's query embedding goes
through :class:`~fleetmind.llm.embeddings.LlamaEmbedder`; on two cores shared with llama-server itself, what the
client costs is taken from the model. Measured here against llama-server: a streamed token cost ~480 µs of CPU
through httpx (its anyio/httpcore layers) and ~270 µs through aiohttp (a bare asyncio reader: ~260 µs); one
embedding call ~1.4-1.9 ms of CPU and 4.0-4.6 ms of wall time through httpx, ~0.7 ms and 3.4 ms through aiohttp.
The one-shot calls (tools, vision, the supervisor) stay on httpx.

An aiohttp session belongs to the event loop it was made on, so :meth:`LoopSession.get` makes one per running
loop on first use. llama-server keeps a connection alive for 5 s after a plain answer but closes it after a
streamed one: a stream asks for ``force_close`` (reusing a connection the server is closing fails the request),
and kept-alive connections are let go after ``KEEPALIVE_S``, before the server drops them.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

# shorter than llama-server's own keep-alive (5 s), so the client lets a connection go before the server does
KEEPALIVE_S = 2.0


class LoopSession:
    """An aiohttp session per running event loop, made on first use; :meth:`aclose` closes the current one."""

    def __init__(self, timeout: aiohttp.ClientTimeout, *, force_close: bool = False) -> None:
        self._timeout = timeout
        self._force_close = force_close
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            if self._force_close:
                connector = aiohttp.TCPConnector(force_close=True, limit=0)
            else:
                connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        session, self._session, self._loop = self._session, None, None
        if session is not None and not session.closed:
            with contextlib.suppress(RuntimeError):  # made on a loop that has since closed: nothing left open
                await session.close()
