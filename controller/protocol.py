"""The southbound protocol between the controller and host agents (version 1).

One WebSocket per host, opened by the agent; JSON messages, one per frame, each an object with
a ``type``. Shared by the controller and the agent; pure (no I/O). docs/southbound.md is the
prose specification.

agent -> controller
    hello     {protocol, server, appliedRevision, providerAddress?, agent?}
    ack       {revision, failures: [{key, code, message}]}
controller -> agent
    snapshot  {revision, objects: {key: body}}            replaces the agent's whole state
    delta     {revision, upserts: {key: body}, deletes: [key], resume?: true}
    bookmark  {revision}                                  nothing for this host up to here
    error     {code, message}                             then the controller closes
"""

from __future__ import annotations

from typing import Any

import orjson

PROTOCOL_VERSION = 1

HELLO = "hello"
ACK = "ack"
SNAPSHOT = "snapshot"
DELTA = "delta"
BOOKMARK = "bookmark"
ERROR = "error"

Message = dict[str, Any]

# Object kinds: an object's key is "<kind>/<instanceId>" (docs/southbound.md, "Objects").
HOST = "host"
ENDPOINT = "endpoint"
NETWORK = "network"
MAPPING = "mapping"
ACL = "acl"
ACL_RULE = "aclRule"
ROUTE_TABLE = "routeTable"


def object_key(kind: str, instance_id: str) -> str:
    return f"{kind}/{instance_id}"


def kind_of(key: str) -> str:
    """The object kind of an object key ("aclRule" of "aclRule/<id>")."""
    return key.partition("/")[0]


class ProtocolError(ValueError):
    """A message that does not follow the protocol."""


def encode(message: Message) -> bytes:
    return orjson.dumps(message)


def decode(frame: str | bytes) -> Message:
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("a message is a JSON object with a string 'type'")
    return message


def revision_of(message: Message) -> int:
    revision = message.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise ProtocolError(f"'{message.get('type')}' needs a non-negative integer 'revision'")
    return revision


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


def ack(revision: int, failures: list[dict[str, str]] | None = None) -> Message:
    return {"type": ACK, "revision": revision, "failures": failures or []}
