"""ChatService: an OpenAI chat request in, an agent request out, the agent's events back as OpenAI answers.

The agent speaks :mod:`fleetmind.contracts.protocol`: we POST an ``AgentRequest`` to ``/api/agent/chat`` and read
newline-delimited ``AgentEvent`` lines. A stream is opened and its first event read *before* the HTTP answer
is committed, so a refused key, a missing expert or a dead agent still reach the client as a proper status
code; after that, failures travel as an error chunk followed by ``[DONE]``. Every request has one deadline
(``request_timeout_s``): the agent is told it, and the gateway gives up a little later if the agent does not.
Closing the stream early (a client that went away) closes the upstream response, which is the agent's cue to
stop. The agent is reached with the stack's service credential and told who is asking (:class:`Identity`); the
caller's key stays here (:mod:`fleetmind.security.service`). Where the agent runs in this process (the embedded
stack), ``link`` hands it the request directly: the same events, no HTTP hop and no registry lookup.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from pydantic import ValidationError

from fleetmind.contracts.protocol import AgentEvent, AgentRequest, ChatMessage, SamplingParams
from fleetmind.gateway.discovery import AgentLocator
from fleetmind.gateway.errors import (
    AgentUnavailableError,
    GatewayError,
    InvalidRequestError,
    UpstreamError,
    UpstreamTimeoutError,
)
from fleetmind.gateway.metrics import RequestMeter
from fleetmind.gateway.schemas import (
    AssistantMessage,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    UsageInfo,
    message_text,
)
from fleetmind.gateway.settings import GatewaySettings
from fleetmind.gateway.upstream import AgentLink, EventStream, LocalStream, Upstream, event_error, status_error
from fleetmind.security.service import (
    CALLER_ID_HEADER,
    CALLER_SCOPE_HEADER,
    SERVICE_HEADER,
    SecretSource,
)

log = logging.getLogger(__name__)

AGENT_CHAT_PATH = "/api/agent/chat"
# the agent enforces the request timeout itself and says so in a "timeout" event; we wait this much longer
TIMEOUT_GRACE_S = 2.0


def agent_request(req: ChatCompletionRequest, *, request_id: str, timeout_s: float) -> AgentRequest:
    """The wire request for ``req``, already checked by :func:`~fleetmind.gateway.schemas.check_supported`."""
    messages = [
        ChatMessage(
            role="system" if m.role == "developer" else m.role,
            content=message_text(m),
            name=m.name,
            tool_call_id=m.tool_call_id,
            tool_calls=[call.model_dump() for call in m.tool_calls] if m.tool_calls else None,
        )
        for m in req.messages
    ]
    params = SamplingParams(
        temperature=req.temperature,
        top_p=req.top_p,
        max_tokens=req.max_completion_tokens or req.max_tokens,
        stop=req.stop_list(),
        seed=req.seed,
        frequency_penalty=req.frequency_penalty,
        presence_penalty=req.presence_penalty,
        response_format={"type": req.response_format.type} if req.response_format else None,
    )
    return AgentRequest(id=request_id, messages=messages, model=req.model, params=params, timeout_s=timeout_s)


@dataclass(frozen=True)
class Identity:
    """Whom a request is for, as the agent is told: the API key's id and scope, never the key."""

    key_id: str
    scope: str


@dataclass
class Completion:
    body: ChatCompletionResponse
    expert: str | None


class ChatService:
    """Turns checked OpenAI requests into agent calls; one per app, shared by all requests."""

    def __init__(
        self,
        settings: GatewaySettings,
        locator: AgentLocator,
        *,
        http: httpx.AsyncClient | None = None,
        secret: SecretSource | None = None,
        link: AgentLink | None = None,
    ) -> None:
        self.settings = settings
        self.locator = locator
        self.secret = secret or SecretSource()
        self.link = link
        # no read timeout here: each request has its own deadline, enforced per line in Upstream
        self.http = http or httpx.AsyncClient(timeout=httpx.Timeout(None, connect=5.0))

    async def aclose(self) -> None:
        await self.http.aclose()

    def _agent_headers(self, identity: Identity) -> dict[str, str]:
        secret = self.secret.get()
        if not secret:
            raise AgentUnavailableError(
                "The gateway has no service secret to reach the agent with: set FLEETMIND_SERVICE_SECRET or "
                "FLEETMIND_STATE_DIR (its service.secret is made when the agent first starts)."
            )
        return {SERVICE_HEADER: secret, CALLER_ID_HEADER: identity.key_id, CALLER_SCOPE_HEADER: identity.scope}

    async def _open(self, req: ChatCompletionRequest, *, identity: Identity, completion_id: str) -> EventStream:
        start = time.monotonic()
        deadline = start + self.settings.request_timeout_s + TIMEOUT_GRACE_S
        discovery_deadline = start + self.settings.discovery_timeout_s
        request_id = "req-" + completion_id.removeprefix("chatcmpl-")
        if self.link is not None:
            try:
                wire = agent_request(req, request_id=request_id, timeout_s=self.settings.request_timeout_s)
            except ValidationError as exc:
                raise InvalidRequestError(f"The request cannot be passed to the agent: {exc}") from exc
            log.info("chat %s model=%s stream=%s -> this process's agent", request_id, req.model, req.stream)
            return LocalStream(self.link(wire, identity.key_id), deadline, request_id)
        delay = 0.1
        while True:
            url = await self.locator.agent_url(deadline=discovery_deadline)
            left = max(0.001, deadline - TIMEOUT_GRACE_S - time.monotonic())
            try:
                wire = agent_request(req, request_id=request_id, timeout_s=min(left, 3600.0))
            except ValidationError as exc:
                raise InvalidRequestError(f"The request cannot be passed to the agent: {exc}") from exc
            http_request = self.http.build_request(
                "POST",
                url + AGENT_CHAT_PATH,
                content=wire.model_dump_json(),
                headers={
                    **self._agent_headers(identity),
                    "Content-Type": "application/json",
                    "Accept": "application/x-ndjson",
                },
            )
            try:
                # the agent answers headers at once; one that does not still may not outlive the deadline
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    response = await self.http.send(http_request, stream=True)
                if response.status_code == 503 and time.monotonic() + delay < discovery_deadline:
                    # an agent whose pipeline is still starting: as good as not there yet
                    await response.aclose()
                    self.locator.forget(url)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                break
            except TimeoutError:
                raise UpstreamTimeoutError(f"The agent at {url} did not answer in time.") from None
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # the agent may be starting or just moved: ask again until the discovery deadline
                log.info("agent at %s not reachable yet (%s); retrying", url, exc)
                self.locator.forget(url)
                if time.monotonic() + delay >= discovery_deadline:
                    raise AgentUnavailableError(
                        f"Could not connect to the agent at {url} within {self.settings.discovery_timeout_s:g}s: {exc}"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except httpx.HTTPError as exc:
                raise UpstreamError(f"Could not send the request to the agent at {url}: {exc}") from exc
        if response.status_code != 200:
            try:
                body = await response.aread()
            finally:
                await response.aclose()
            raise status_error(response.status_code, body)
        log.info("chat %s model=%s stream=%s -> %s", request_id, req.model, req.stream, url)
        return Upstream(response, response.aiter_lines(), deadline, request_id)

    async def complete(
        self, req: ChatCompletionRequest, *, identity: Identity, meter: RequestMeter | None = None
    ) -> Completion:
        """The whole answer at once; ``meter`` hears of the first text and the token usage."""
        completion_id = "chatcmpl-" + uuid.uuid4().hex
        created = int(time.time())
        upstream = await self._open(req, identity=identity, completion_id=completion_id)
        parts: list[str] = []
        try:
            while True:
                event = await upstream.next_event()
                if event is None:
                    raise UpstreamError("The agent closed the stream before it finished.")
                if event.type == "error":
                    raise event_error(event)
                if meter is not None:
                    meter.accepted(req.model)
                if event.type == "delta":
                    if meter is not None and event.text:
                        meter.first_token()
                    parts.append(event.text)
                else:
                    usage = event.usage
                    if meter is not None and usage is not None:
                        meter.usage(usage.prompt_tokens, usage.completion_tokens)
                    await upstream.finish()
                    body = ChatCompletionResponse(
                        id=completion_id,
                        created=created,
                        model=req.model,
                        choices=[
                            Choice(
                                message=AssistantMessage(content="".join(parts) + event.text),
                                finish_reason=event.finish_reason or "stop",
                            )
                        ],
                        usage=_usage(usage.prompt_tokens, usage.completion_tokens) if usage else UsageInfo(),
                    )
                    return Completion(body, event.expert)
        finally:
            await upstream.aclose()

    async def stream(
        self, req: ChatCompletionRequest, *, identity: Identity, meter: RequestMeter | None = None
    ) -> AsyncIterator[str]:
        """Server-sent events for ``req``; errors before the first event are raised here, not streamed."""
        completion_id = "chatcmpl-" + uuid.uuid4().hex
        created = int(time.time())
        upstream = await self._open(req, identity=identity, completion_id=completion_id)
        try:
            first = await upstream.next_event()
            if first is None:
                raise UpstreamError("The agent closed the stream before it finished.")
            if first.type == "error":
                raise event_error(first)
            if meter is not None:
                meter.accepted(req.model)
        except BaseException:
            await upstream.aclose()
            raise
        return _sse(req, upstream, first, completion_id=completion_id, created=created, meter=meter)


def _usage(prompt: int, completion: int) -> UsageInfo:
    return UsageInfo(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def sse(payload: dict[str, object] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n"


async def _sse(
    req: ChatCompletionRequest,
    upstream: EventStream,
    first: AgentEvent,
    *,
    completion_id: str,
    created: int,
    meter: RequestMeter | None,
) -> AsyncIterator[str]:
    include_usage = req.include_usage()

    # Every chunk is the same JSON around a different delta: the text around it is built once, and each chunk
    # only encodes its delta (a pydantic model per chunk was a measurable part of the gateway's cost per token).
    # The shape is ChatCompletionChunk's; "usage": null appears only when usage was asked for, as OpenAI does.
    head = json.dumps(
        {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": req.model},
        separators=(",", ":"),
    )[:-1]
    tail = (',"usage":null' if include_usage else "") + ',"system_fingerprint":null}\n\n'

    def chunk(delta: dict[str, str], finish_reason: str | None = None) -> str:
        encoded = json.dumps(delta, separators=(",", ":"))
        finish = json.dumps(finish_reason)
        choice = f'{{"index":0,"delta":{encoded},"finish_reason":{finish},"logprobs":null}}'
        return f'data: {head},"choices":[{choice}]{tail}'

    # The role chunk goes out in one write with what follows it (the first text, mostly): one send and one wake-up
    # of the client fewer before the first token, the same events.
    opening = chunk({"role": "assistant", "content": ""})

    def out(text: str) -> str:
        nonlocal opening
        text, opening = opening + text, ""
        return text

    try:
        event: AgentEvent | None = first
        while event is not None:
            if event.type == "error":
                error = event_error(event)
                if meter is not None:
                    meter.stream_error(error.code)
                yield out(sse(error.envelope()))
                break
            if event.text:
                if meter is not None:
                    meter.first_token()
                yield out(chunk({"content": event.text}))
            if event.type == "done":
                await upstream.finish()
                yield out(chunk({}, finish_reason=event.finish_reason or "stop"))
                usage = event.usage
                if meter is not None and usage is not None:
                    meter.usage(usage.prompt_tokens, usage.completion_tokens)
                if include_usage:
                    final = ChatCompletionChunk(
                        id=completion_id,
                        created=created,
                        model=req.model,
                        choices=[],
                        usage=_usage(usage.prompt_tokens, usage.completion_tokens) if usage else UsageInfo(),
                    )
                    yield sse(final.model_dump(mode="json"))
                break
            event = await upstream.next_event()
        else:
            closed = UpstreamError("The agent closed the stream before it finished.")
            if meter is not None:
                meter.stream_error(closed.code)
            yield out(sse(closed.envelope()))
    except GatewayError as exc:
        log.warning("chat %s failed mid-stream: %s", upstream.request_id, exc.message)
        if meter is not None:
            meter.stream_error(exc.code)
        yield out(sse(exc.envelope()))
    finally:
        await upstream.aclose()
    yield out(sse("[DONE]"))
