"""The southbound protocol between the controller and host agents (version 1).

One WebSocket per host, opened by the agent; JSON messages, one per frame, each an object with
a ``type``. Shared by the controller and the agent, so both read the same limits and the same
rules; pure (no I/O). docs/southbound.md is the prose specification.

agent -> controller
    hello     {protocol, server, appliedRevision, providerAddress?, agent?}
    ack       {revision, failures: [{key, code, message}], health?: [{probe, dip, state}]}
controller -> agent
    snapshot  {revision, objects: {key: body}}            replaces the agent's whole state
    delta     {revision, upserts: {key: body}, deletes: [key], resume?: true}
    bookmark  {revision}                                  nothing for this host up to here
    error     {code, message}                             then the controller closes

Every agent message is checked here (``read_hello``, ``read_ack``): types, ranges and sizes.
A message that breaks a rule raises ``ProtocolError`` carrying the code the controller answers
with (``BadHello``, ``BadMessage``, ``MessageTooLarge``) before it closes the channel (1008).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic import field_validator as check

PROTOCOL_VERSION = 1

HELLO = "hello"
ACK = "ack"
SNAPSHOT = "snapshot"
DELTA = "delta"
BOOKMARK = "bookmark"
ERROR = "error"

# Codes of the ``error`` message.
BAD_HELLO = "BadHello"  # the first message is not a valid hello, or came too late
BAD_MESSAGE = "BadMessage"  # a later message breaks the protocol
MESSAGE_TOO_LARGE = "MessageTooLarge"  # a frame over MAX_FRAME_BYTES
STATUS_NOT_RECORDED = "StatusNotRecorded"  # the controller could not store what was reported

# WebSocket close codes the controller uses.
GOING_AWAY = 1001  # replaced by a newer connection of the server, or shutting down
POLICY_VIOLATION = 1008  # after an ``error`` message about what the agent sent
INTERNAL_ERROR = 1011  # after ``StatusNotRecorded``
TRY_AGAIN_LATER = 1013  # the agent fell too far behind; reconnect and resume

# Limits of what an agent sends. A frame over MAX_FRAME_BYTES is answered MessageTooLarge;
# the WebSocket layer cuts off any frame over TRANSPORT_MAX_BYTES (close 1009) without
# reading it whole. Frames the controller sends are not limited (a snapshot can be large).
MAX_FRAME_BYTES = 4 * 1024 * 1024
TRANSPORT_MAX_BYTES = 2 * MAX_FRAME_BYTES
MAX_REVISION = 2**63 - 1  # revisions are stored as signed 64-bit integers
MAX_FAILURES = 10_000
MAX_KEY_LENGTH = 256  # `<kind>/<instanceId>` is about 50
# The seed of the flow hash of load balancing: the same on every host and mux, so one flow
# hashes to one slot everywhere (nftables' jhash takes a random seed when none is given).
FLOW_HASH_SEED = 0x53444E43
MAX_CODE_LENGTH = 128
MAX_TEXT_LENGTH = 1024  # a failure's message
MAX_NAME_LENGTH = 256  # hello's `server` and `agent`
MAX_ADDRESS_LENGTH = 45  # the longest textual IPv6 address
# Health changes one ack may carry: a host reports changes, not every probe, and a host
# with more DIPs changing at once sends them over several acks (``ack`` cuts them).
MAX_HEALTH_REPORTS = 1024
UP = "Up"
DOWN = "Down"

Message = dict[str, Any]
Revision = Annotated[int, Field(ge=0, le=MAX_REVISION)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CODE_LENGTH)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH)]
# A resource's instanceId, in the canonical lower-case form the controller sends.
InstanceId = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]

# Object kinds: an object's key is "<kind>/<instanceId>" (docs/southbound.md, "Objects").
HOST = "host"
ENDPOINT = "endpoint"
NETWORK = "network"
MAPPING = "mapping"
ACL = "acl"
ACL_RULE = "aclRule"
ROUTE_TABLE = "routeTable"
LB_RULE = "lbRule"
LB_NAT = "lbNat"
LB_OUTBOUND = "lbOutbound"
PUBLIC_IP = "publicIp"
PROBE = "probe"
VIP_MAP = "vipMap"


def object_key(kind: str, instance_id: str) -> str:
    return f"{kind}/{instance_id}"


def kind_of(key: str) -> str:
    """The object kind of an object key ("aclRule" of "aclRule/<id>")."""
    return key.partition("/")[0]


class ProtocolError(ValueError):
    """A message that does not follow the protocol; ``code`` is what the controller answers."""

    def __init__(self, message: str, code: str = BAD_MESSAGE) -> None:
        super().__init__(message)
        self.code = code


class _Message(BaseModel):
    # strict: "7" is not a revision, true is not 1; unknown members are ignored (a newer
    # peer may add some).
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


M = TypeVar("M", bound=_Message)


class Failure(_Message):
    key: Key
    code: Code
    message: Text


class Hello(_Message):
    type: Literal["hello"]
    protocol: int
    server: Name
    applied_revision: Revision = Field(0, alias="appliedRevision")
    provider_address: str | None = Field(None, alias="providerAddress")
    agent: Name | None = None

    @check("provider_address")
    @classmethod
    def _an_ip_address(cls, address: str | None) -> str | None:
        if address is None:
            return None
        # A provider address is the host's underlay address: no zone, no name.
        if len(address) > MAX_ADDRESS_LENGTH or "%" in address:
            raise ValueError("not a provider IP address")
        ipaddress.ip_address(address)
        return address


class Health(_Message):
    """A DIP's state under a probe: ``probe`` and ``dip`` (the ipConfiguration) are the
    instanceIds the ``probe/<id>`` object names."""

    probe: InstanceId
    dip: InstanceId
    state: Literal["Up", "Down"]


class Ack(_Message):
    type: Literal["ack"]
    revision: Revision
    failures: list[Failure] = Field(default_factory=list, max_length=MAX_FAILURES)
    # Optional: agents without load balancing (and older ones) leave it out.
    health: list[Health] = Field(default_factory=list, max_length=MAX_HEALTH_REPORTS)

    def reported(self) -> list[dict[str, str]]:
        return [failure.model_dump() for failure in self.failures]


def encode(message: Message) -> bytes:
    """``message`` as JSON, in a bytes object of its own size. orjson hands out its output in
    the buffer it wrote it into, rounded up to a power of two and at least 4 KiB, and never
    shrinks it; a frame waits in queues and an object's encoding is cached for as long as the
    object lives, so at 200,000 objects the slack alone was 750 MiB. The copy costs a
    fraction of the encoding."""
    return bytes(memoryview(orjson.dumps(message)))


def decode(frame: str | bytes) -> Message:
    """Any message (either direction): a JSON object with a string ``type``."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("a message is a JSON object with a string 'type'")
    return message


def check_size(frame: str | bytes) -> None:
    """Refuse a frame over MAX_FRAME_BYTES (counted in UTF-8 bytes)."""
    size = len(frame)
    if isinstance(frame, str) and size * 4 > MAX_FRAME_BYTES:
        size = len(frame.encode("utf-8", "surrogatepass"))
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(
            f"a frame of {size} bytes; at most {MAX_FRAME_BYTES} are accepted", MESSAGE_TOO_LARGE
        )


def read_hello(frame: str | bytes) -> Hello:
    """The agent's first message."""
    try:
        check_size(frame)
        message = decode(frame)
    except ProtocolError as exc:
        raise ProtocolError(str(exc), exc.code if exc.code != BAD_MESSAGE else BAD_HELLO) from None
    if message["type"] != HELLO:
        raise ProtocolError("the first message must be 'hello'", BAD_HELLO)
    version = message.get("protocol")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError(
            f"protocol {orjson.dumps(version).decode()[:32]} is not served; this controller "
            f"speaks {PROTOCOL_VERSION}",
            BAD_HELLO,
        )
    return _validated(Hello, message, BAD_HELLO)


def read_ack(frame: str | bytes) -> Ack:
    """A message after the hello: only acks are sent then."""
    check_size(frame)
    message = decode(frame)
    if message["type"] != ACK:
        raise ProtocolError(f"unexpected message type '{message['type'][:MAX_NAME_LENGTH]}'")
    return _validated(Ack, message, BAD_MESSAGE)


def _validated(model: type[M], message: Message, code: str) -> M:
    try:
        return model.model_validate(message)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "message"
        raise ProtocolError(f"'{message['type']}' {where}: {first['msg']}", code) from None


def revision_of(message: Message) -> int:
    revision = message.get("revision")
    if (
        not isinstance(revision, int)
        or isinstance(revision, bool)
        or not 0 <= revision <= MAX_REVISION
    ):
        raise ProtocolError(f"'{message.get('type')}' needs a non-negative 64-bit 'revision'")
    return revision


def error_of(message: Message) -> tuple[str, str]:
    """The code and text of an ``error`` message, cut to printable lengths."""
    code, text = message.get("code"), message.get("message")
    return str(code)[:MAX_CODE_LENGTH], str(text)[:MAX_TEXT_LENGTH]


def error(code: str, message: str) -> Message:
    return {"type": ERROR, "code": code, "message": message}


def hello(
    server: str,
    applied_revision: int,
    *,
    provider_address: str | None = None,
    agent: str = "sdnc",
) -> Message:
    return {
        "type": HELLO,
        "protocol": PROTOCOL_VERSION,
        "server": server,
        "appliedRevision": applied_revision,
        "providerAddress": provider_address,
        "agent": agent,
    }


def ack(
    revision: int,
    failures: list[dict[str, str]] | None = None,
    health: list[dict[str, str]] | None = None,
) -> Message:
    """An ack within the limits a controller accepts: each failure's members cut to their
    length, at most MAX_FAILURES of them, and no more than fit in a frame (the rest are left
    out: a host failing that much is reported as failing, if not object by object). Health
    changes (at most MAX_HEALTH_REPORTS, the caller sends the rest in the next ack) are
    added only when there are some, so an ack without them is what older agents send."""
    budget = MAX_FRAME_BYTES - 1024 - MAX_HEALTH_REPORTS * 128
    kept: list[dict[str, str]] = []
    for failure in failures or []:
        if len(kept) == MAX_FAILURES:
            break
        entry = {
            "key": str(failure["key"])[:MAX_KEY_LENGTH],
            "code": str(failure["code"])[:MAX_CODE_LENGTH] or "Unknown",
            "message": str(failure["message"])[:MAX_TEXT_LENGTH],
        }
        budget -= len(orjson.dumps(entry)) + 1
        if budget < 0:
            break
        kept.append(entry)
    message: Message = {"type": ACK, "revision": revision, "failures": kept}
    if health:
        message["health"] = health[:MAX_HEALTH_REPORTS]
    return message
