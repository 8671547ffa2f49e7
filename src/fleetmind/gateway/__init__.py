"""Layer 6: the OpenAI-compatible gateway (``/v1/chat/completions``, ``/v1/models``) in front of the agent.

Any OpenAI client points ``base_url`` at ``http://HOST:PORT/v1`` (``fleetmind up`` prints it); the gateway checks
the API key, validates the request, turns it into an :class:`~fleetmind.contracts.protocol.AgentRequest`, sends it
to the agent process found in the registry (or at a fixed URL) and answers in OpenAI's shapes, streamed or not.
Every failure leaves as one JSON envelope ``{"error": {"message", "type", "param", "code"}}``.

Exceptions (each carries the HTTP status and envelope fields it is answered with)::

    GatewayError (Exception)
      +-- AuthenticationError        401  a missing or unknown API key
      +-- InvalidRequestError        400  a request we cannot accept as written
      |     +-- UnsupportedParameterError  400  a parameter we cannot honour yet (``param`` names it)
      +-- ModelNotFoundError         404  a model id that is neither ``fleetmind`` nor a registered expert
      +-- RateLimitedError           429  a key over its requests or tokens per minute (``Retry-After`` says when)
      +-- AgentUnavailableError      503  no healthy agent (or no expert) could be reached in time
      +-- UpstreamTimeoutError       504  the agent did not finish within the request timeout
      +-- UpstreamError              502  the agent failed or broke the wire protocol
      +-- ClientDisconnected         499  the client left before its answer was ready
"""

from fleetmind.gateway.errors import (
    AgentUnavailableError,
    AuthenticationError,
    ClientDisconnected,
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    RateLimitedError,
    UnsupportedParameterError,
    UpstreamError,
    UpstreamTimeoutError,
)

__all__ = [
    "AgentUnavailableError",
    "AuthenticationError",
    "ClientDisconnected",
    "GatewayError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "RateLimitedError",
    "UnsupportedParameterError",
    "UpstreamError",
    "UpstreamTimeoutError",
]
