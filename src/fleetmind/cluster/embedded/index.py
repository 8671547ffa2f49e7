"""A Raft-like modify index with blocking waits, the basis of Nomad's and Consul's blocking queries.

Every state change bumps the index; ``GET ...?index=N&wait=5s`` waits until the index passes N (or the wait
ends), which is how ``X-Nomad-Index`` / ``X-Consul-Index`` clients watch for changes without polling.
"""

from __future__ import annotations

import asyncio
import contextlib


class IndexClock:
    """A monotonically increasing change counter that coroutines can wait on."""

    def __init__(self) -> None:
        self.index = 1
        self._changed = asyncio.Event()

    def bump(self) -> int:
        self.index += 1
        # Wake every waiter, then hand out a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()
        return self.index

    async def wait_past(self, index: int, max_wait: float) -> int:
        """Return once the index is greater than ``index`` or ``max_wait`` seconds have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, max_wait)
        while self.index <= index:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.index
