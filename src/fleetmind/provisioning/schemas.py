"""Request and response models of the provisioning API, and the validators that keep hostile input out.

A node's name must be an RFC 1123 host name (letters, digits and inner hyphens per label, dots between labels,
253 characters at most), lower-cased on the way in; so no ``;``, space, ``/``, quote, brace or pattern
character (``,:!&*~[]``) can ever reach the inventory, an ansible ``--limit`` or TODO.md. IP and MAC addresses
are parsed, not pattern-matched: an IP must be a plain unicast address a node can have (no IPv6 scope id, no
surrounding space, no loopback, link-local, unspecified, multicast, broadcast, reserved or cloud metadata
address, nor one of those mapped into IPv6). Every list and string in ``facts`` is bounded and restricted to
characters that cannot open a YAML or Jinja construct."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from fleetmind.http.envelope import ErrorResponse

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_PATTERN = rf"^{_LABEL}(?:\.{_LABEL})*$"
MAC_PATTERN = r"^[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}$"


def _mac(value: str) -> str:
    octets = [int(part, 16) for part in value.replace("-", ":").split(":")]
    if not any(octets):
        raise ValueError("the all-zero MAC address is not a real interface")
    if octets[0] & 1:
        raise ValueError("a multicast or broadcast MAC address is not a real interface")
    return ":".join(f"{o:02x}" for o in octets)


# Cloud metadata services a node must never be pointed at (the link-local ones are refused as link-local anyway).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)


def _ip(value: str) -> str:
    """A plain address a node can be reached at: no scope id, no loopback, link-local, metadata, multicast."""
    if "%" in value:
        raise ValueError("an IPv6 scope id ('%...') is not allowed; send the plain address")
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("not an IPv4 or IPv6 address") from None
    inner = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped else addr
    for check in {addr, inner}:
        if check.is_unspecified or check.is_multicast or str(check) == "255.255.255.255":
            raise ValueError("an unspecified, multicast or broadcast address cannot be a node's address")
        if check.is_loopback:
            raise ValueError("a loopback address cannot be a node's address")
        if check.is_link_local:
            raise ValueError("a link-local address cannot be a node's address")
        if check in METADATA_ADDRESSES:
            raise ValueError("a cloud metadata address cannot be a node's address")
        if check.is_reserved:
            raise ValueError("a reserved address cannot be a node's address")
    return str(addr)


Hostname = Annotated[
    str,
    StringConstraints(min_length=1, max_length=253, pattern=HOSTNAME_PATTERN),
    AfterValidator(str.lower),
    Field(description="RFC 1123 host name; stored lower-cased.", examples=["node-01"]),
]
IpAddress = Annotated[
    str,
    StringConstraints(min_length=2, max_length=45),
    AfterValidator(_ip),
    Field(
        description="The node's IPv4 or IPv6 address.",
        examples=["192.168.1.50"],
        json_schema_extra={"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
    ),
]
MacAddress = Annotated[
    str,
    StringConstraints(min_length=17, max_length=17, pattern=MAC_PATTERN),
    AfterValidator(_mac),
    Field(description="Unicast MAC address, ':' or '-' separated.", examples=["52:54:00:12:34:56"]),
]
CpuFlag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_.]+$")]
JobState = Literal["queued", "running", "successful", "failed", "interrupted"]
ACTIVE_STATES: tuple[str, ...] = ("queued", "running")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Disk(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", examples=["sda"])
    size_bytes: int = Field(ge=0, le=2**62)


class Facts(_Strict):
    """What the call-home script gathers: CPU, cores, memory, disks. Every field is optional and bounded."""

    cpu_model: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9 ()@.,_+/:-]+$")
    cpu_flags: list[CpuFlag] = Field(default_factory=list, max_length=512)
    cores: int | None = Field(default=None, ge=1, le=4096)
    ram_mb: int | None = Field(default=None, ge=1, le=2**31)
    disks: list[Disk] = Field(default_factory=list, max_length=64)


class CallHomeRequest(_Strict):
    hostname: Hostname
    ip: IpAddress
    mac: MacAddress | None = None
    facts: Facts = Field(default_factory=Facts)


class Job(BaseModel):
    """One playbook run for one node, as stored and as reported."""

    id: str
    hostname: str
    role: str
    ip: str
    mac: str | None = None
    trigger: Literal["call-home", "retry"]
    state: JobState
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    rc: int | None = None
    error: str | None = None
    output_tail: list[str] = Field(default_factory=list)


class CallHomeAccepted(BaseModel):
    job_id: str
    hostname: str
    role: str
    state: JobState
    status_url: str


class Node(BaseModel):
    hostname: str
    role: str | None = None
    ip: str | None = None
    mac: str | None = None
    in_inventory: bool
    last_state: JobState | None = None


class NodeStatus(BaseModel):
    node: Node
    jobs: list[Job]


class JobList(BaseModel):
    jobs: list[Job]
    counts: dict[str, int] = Field(description="Jobs per state, over all jobs.")


class NodeList(BaseModel):
    nodes: list[Node]


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    queued: int
    running: int


def error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses=`` entries for the error statuses a route can answer."""
    return {code: {"model": ErrorResponse} for code in codes}
