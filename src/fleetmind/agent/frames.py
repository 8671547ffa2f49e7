"""The pipecat frames that carry chat requests and their answers through the agent pipeline.

Every frame holds the request's correlation id (``AgentRequest.id``), so many requests can be in flight in one
pipeline at once and the sink can hand each output frame to the stream that waits for it. Output frames are
not interruptible: an interruption (a user talking over the bot, once voice joins the pipeline) must never
drop the ``done`` or ``error`` that ends somebody's stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipecat.frames.frames import DataFrame, SystemFrame

from fleetmind.contracts.errors import AgentErrorCode
from fleetmind.contracts.protocol import AgentEvent, AgentRequest, Usage


@dataclass
class AgentRequestFrame(DataFrame):
    """A chat request entering the pipeline."""

    request: AgentRequest

    @property
    def request_id(self) -> str:
        return self.request.id


@dataclass
class AgentCancelFrame(SystemFrame):
    """Stop work on a request (its client went away); a system frame so it overtakes queued work."""

    request_id: str
    reason: str = "cancelled"


@dataclass
class AgentOutputFrame(DataFrame):
    """Base of the frames that become :class:`AgentEvent` objects at the end of the pipeline."""

    request_id: str
    interruptible: bool = field(default=False, init=False)

    def to_event(self) -> AgentEvent:
        raise NotImplementedError

    @property
    def terminal(self) -> bool:
        """Whether this frame ends its request's stream."""
        return False


@dataclass
class AgentDeltaFrame(AgentOutputFrame):
    """A piece of generated text."""

    text: str = ""
    expert: str | None = None

    def to_event(self) -> AgentEvent:
        return AgentEvent(type="delta", id=self.request_id, text=self.text, expert=self.expert)


@dataclass
class AgentDoneFrame(AgentOutputFrame):
    """The request finished: why, how many tokens (as the expert counted them) and who answered."""

    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    expert: str | None = None

    def to_event(self) -> AgentEvent:
        return AgentEvent(
            type="done",
            id=self.request_id,
            finish_reason=self.finish_reason,
            usage=self.usage,
            expert=self.expert,
        )

    @property
    def terminal(self) -> bool:
        return True


@dataclass
class AgentErrorFrame(AgentOutputFrame):
    """The request failed; ``code`` is one of the short machine codes of the wire protocol."""

    code: AgentErrorCode = "internal"
    message: str = ""
    expert: str | None = None

    def to_event(self) -> AgentEvent:
        return AgentEvent(type="error", id=self.request_id, code=self.code, message=self.message, expert=self.expert)

    @property
    def terminal(self) -> bool:
        return True
