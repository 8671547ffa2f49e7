"""The agent's side of a chat: its answer stream and its failures as gateway errors.

Two kinds of stream, one interface (:class:`EventStream`): :class:`Upstream`, an open agent response read line by
line (each an :class:`~fleetmind.contracts.protocol.AgentEvent`), and :class:`LocalStream`, the events of an agent
in this process (:class:`AgentLink`: the embedded stack serves the gateway from the agent's own process, one hop
fewer). Both are read under the request's one deadline. An agent ``error`` event (:func:`event_error`) or an HTTP
status instead of a stream (:func:`status_error`) becomes the gateway error a client sees.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import anyio
import httpx
from pydantic import ValidationError

from fleetmind.contracts.protocol import AgentEvent, AgentRequest
from fleetmind.gateway.errors import (
    AgentUnavailableError,
    AuthenticationError,
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    UpstreamError,
    UpstreamTimeoutError,
)

# the agent ends its body right after the "done" line; this only guards against one that does not
DRAIN_TIMEOUT_S = 0.5


def event_error(event: AgentEvent) -> GatewayError:
    """The gateway error for an agent ``error`` event."""
    message = event.message or f"The agent failed ({event.code or 'no reason given'})."
    match event.code:
        case "timeout":
            return UpstreamTimeoutError(message)
        case "no_expert":
            return AgentUnavailableError(message, code="no_expert")
        case "model_not_found":
            return ModelNotFoundError(message=message)
        case "invalid_request":
            # every expert refused the request itself (a bad response_format, say): the client's to fix
            return InvalidRequestError(message)
        case _:
            return UpstreamError(message, code=event.code or "agent_error")


def _upstream_message(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:500] or None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if data.get("detail"):
            return str(data["detail"])
    return None


def status_error(status: int, body: bytes) -> GatewayError:
    """The gateway error for an agent that answered ``status`` instead of a stream."""
    detail = _upstream_message(body)
    if status == 401:
        # the caller's key was checked here: a 401 from the agent means it did not take our service credential
        return UpstreamError("The agent refused the gateway's service credential (FLEETMIND_SERVICE_SECRET).")
    if status == 403:
        return AuthenticationError(detail or "The agent refused the request for this key.")
    if status in (400, 422):
        return InvalidRequestError(detail or "The agent refused the request.")
    if status == 503:
        return AgentUnavailableError(detail or "The agent is not ready.")
    if status == 504:
        return UpstreamTimeoutError(detail or "The agent timed out.")
    return UpstreamError(f"The agent answered HTTP {status}" + (f": {detail}" if detail else "."))


class EventStream(Protocol):
    """An agent's answer as events, under the request's deadline."""

    request_id: str

    async def next_event(self) -> AgentEvent | None:
        """The next event, ``None`` when the agent closed the stream; raises on timeout or garbage."""
        ...

    async def finish(self) -> None:
        """After ``done``: let the stream end cleanly."""
        ...

    async def aclose(self) -> None:
        """Close the stream; an unfinished answer is cancelled."""
        ...


class AgentLink(Protocol):
    """An agent in this process: the events of ``request``, owned by the key ``key_id`` (already checked here).

    Raises a :class:`~fleetmind.gateway.errors.GatewayError` (``AgentUnavailableError``: not running) instead of
    answering, as the HTTP agent answers a status."""

    def __call__(self, request: AgentRequest, key_id: str) -> AsyncIterator[AgentEvent]: ...


@dataclass
class LocalStream:
    """The events of an agent in this process (:class:`AgentLink`), read as an :class:`Upstream` is read."""

    events: AsyncIterator[AgentEvent]
    deadline: float
    request_id: str

    async def next_event(self) -> AgentEvent | None:
        left = self.deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            async with asyncio.timeout(left):
                return await anext(self.events)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise UpstreamTimeoutError("The agent did not finish within the request timeout.") from None

    async def finish(self) -> None:
        """Nothing is left to read after ``done``; closing ends the agent's side."""
        await self.aclose()

    async def aclose(self) -> None:
        # closing the generator cancels the request and its expert call, as a closed connection does over HTTP
        aclose = getattr(self.events, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()


@dataclass
class Upstream:
    """An open agent response and the request's deadline (``time.monotonic``)."""

    response: httpx.Response
    lines: AsyncIterator[str]
    deadline: float
    request_id: str

    async def next_event(self) -> AgentEvent | None:
        """The next event, ``None`` when the agent closed the stream; raises on timeout or garbage."""
        while True:
            left = self.deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                async with asyncio.timeout(left):
                    line = await anext(self.lines)
            except StopAsyncIteration:
                return None
            except TimeoutError:
                raise UpstreamTimeoutError("The agent did not finish within the request timeout.") from None
            except httpx.HTTPError as exc:
                raise UpstreamError(f"The connection to the agent broke: {exc}") from exc
            if not line.strip():
                continue
            try:
                return AgentEvent.model_validate_json(line)
            except ValidationError as exc:
                raise UpstreamError(f"The agent sent a line that is not an event: {line[:200]!r}") from exc

    async def finish(self) -> None:
        """After ``done``: read to the end of the body, so the connection goes back to the pool.

        A response closed with unread bytes costs its connection, and the next request a new one (a measured
        ~1 ms of the gateway's added latency). Only a finished answer is drained; an abandoned one is closed
        at once, because a closed connection is what tells the agent to stop.
        """
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                async for _ in self.lines:
                    pass
        except (TimeoutError, httpx.HTTPError):
            pass  # the connection is not reused then; nothing else is lost

    async def aclose(self) -> None:
        # shielded: this runs when the client has gone and our task is cancelled, and it must still happen
        with anyio.CancelScope(shield=True):
            await self.response.aclose()
