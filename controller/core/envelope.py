"""Parse a request body (the MS-NCNBI resource envelope) into a ``Node`` tree.

The envelope members are ``resourceId``, ``tags``, ``resourceMetadata`` and ``properties``;
``resourceRef``, ``instanceId``, ``etag`` and anything else a client echoes back are ignored.
Child collections (``properties.aclRules`` ...) are split off and parsed recursively, so every
embedded child becomes a node of its own kind.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from controller.core.kinds import Kind, Registry
from controller.core.paths import ResourcePath
from controller.core.tree import Node
from controller.core.values import check_resource_id
from controller.core.wire import (
    POWERSHELL_DEPTH_HINT,
    DuplicateMember,
    WireModel,
    fold_members,
    is_powershell_leftover,
)
from controller.errors import ErrorDetail, InvalidInput, ResourceIdMismatch

_ENVELOPE_MEMBERS = {
    name.lower(): name for name in ("resourceId", "tags", "resourceMetadata", "properties")
}


def parse_resource(registry: Registry, path: ResourcePath, body: object) -> Node:
    """Parse the body of ``PUT path``. The URI is authoritative for the resourceId; a body
    resourceId that names another resource is rejected."""
    envelope = _envelope(body, path.ref)
    body_id = envelope.get("resourceId")
    if body_id is not None and not isinstance(body_id, str):
        raise InvalidInput("resourceId must be a string", target=f"{path.ref}/resourceId")
    if body_id is not None and body_id.lower() != path.resource_id.lower():
        raise ResourceIdMismatch(
            f"resourceId '{body_id}' in the body does not match '{path.resource_id}' in the URI",
            target=f"{path.ref}/resourceId",
        )
    return _parse_node(registry, path, envelope, path.ref)


def _parse_node(
    registry: Registry, path: ResourcePath, envelope: dict[str, Any], where: str
) -> Node:
    """``where`` is the resource's ref: every target below it is that ref followed by the
    member's path in the resource's envelope (``/accessControlLists/a/properties/aclRules``),
    the one format of ``target`` (errors found later point at members the same way:
    ``Node.target``)."""
    kind = path.kind
    properties = f"{where}/properties"
    raw_properties = _as_object(envelope.get("properties", {}), properties)
    children: dict[str, list[Node]] = {}
    for child_kind in registry.children_of(kind):
        raw_children = _pop_member(raw_properties, child_kind.name, properties)
        if raw_children is not None:
            children[child_kind.name] = _parse_children(
                registry, path, child_kind, raw_children, f"{properties}/{child_kind.name}"
            )
    return Node(
        kind=kind,
        resource_id=path.resource_id,
        model=validate_model(kind.properties, raw_properties, properties),
        tags=_optional_object(envelope.get("tags"), f"{where}/tags"),
        metadata=_optional_object(envelope.get("resourceMetadata"), f"{where}/resourceMetadata"),
        children=children,
        ref=path.ref,
    )


def _parse_children(
    registry: Registry, parent: ResourcePath, kind: Kind, raw: object, where: str
) -> list[Node]:
    if not isinstance(raw, list):
        raise InvalidInput(_expected("an array", where, raw), target=where)
    nodes: list[Node] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        item_where = f"{where}/{index}"
        envelope = _envelope(item, item_where)
        resource_id = _child_id(envelope.get("resourceId"), item_where)
        if resource_id.lower() in seen:
            raise InvalidInput(
                f"{kind.name} '{resource_id}' appears more than once", target=item_where
            )
        seen.add(resource_id.lower())
        child_path = parent.child(kind, resource_id)
        nodes.append(_parse_node(registry, child_path, envelope, child_path.ref))
    return nodes


def _child_id(value: object, where: str) -> str:
    if value is None:
        raise InvalidInput("an embedded child needs a resourceId", target=f"{where}/resourceId")
    if not isinstance(value, str):
        raise InvalidInput("resourceId must be a string", target=f"{where}/resourceId")
    try:
        return check_resource_id(value)
    except ValueError as exc:
        raise InvalidInput(str(exc), target=f"{where}/resourceId") from None


def validate_model(model: type[WireModel], raw: dict[str, Any], where: str) -> WireModel:
    """Validate ``raw`` into ``model``; pydantic errors become one InvalidInput (400) whose
    target is ``where`` followed by the path of the first offending member."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        details = tuple(
            ErrorDetail(
                "InvalidInput",
                _message(error, model, raw),
                _join(where, _location(error)),
            )
            for error in exc.errors(include_url=False)
        )
        first = details[0]
        raise InvalidInput(
            f"{first.target}: {first.message}", target=first.target, details=details
        ) from None


# Prefixes pydantic puts before the message of a validator's exception: its wording, not ours.
_LIBRARY_PREFIXES = ("Value error, ", "Assertion failed, ")


def _message(error: ErrorDetails, model: type[WireModel], raw: dict[str, Any]) -> str:
    if error["type"] != "duplicate_member" and is_powershell_leftover(error.get("input")):
        return f"got '{error['input']}': {POWERSHELL_DEPTH_HINT}"
    if error["type"] == "missing":
        return _missing(error["loc"], model, raw)
    message = error["msg"]
    for prefix in _LIBRARY_PREFIXES:
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message


def _missing(loc: tuple[int | str, ...], model: type[WireModel], raw: dict[str, Any]) -> str:
    """A required member is missing: say so, and name a member the client sent that the model
    does not know and that is spelled close to it (``adressPrefix``), the likely typo."""
    member = str(loc[-1]) if loc else "a member"
    message = f"{member} is required"
    sent, model_at = _object_at(raw, model, loc[:-1])
    if sent is None or model_at is None:
        return message
    known = model_at.member_names()
    strangers = {str(key).lower(): str(key) for key in sent if str(key).lower() not in known}
    close = difflib.get_close_matches(member.lower(), list(strangers), n=1, cutoff=0.75)
    if close:
        message += f"; '{strangers[close[0]]}' is not a member: did you mean '{member}'?"
    return message


def _object_at(
    raw: object, model: type[WireModel] | None, loc: tuple[int | str, ...]
) -> tuple[dict[str, Any] | None, type[WireModel] | None]:
    """The object the client sent at ``loc`` (member names matched in any casing) and the
    model that reads it."""
    for part in loc:
        if isinstance(part, int):
            raw = raw[part] if isinstance(raw, list) and 0 <= part < len(raw) else None
            continue
        if not isinstance(raw, dict) or model is None:
            return None, None
        raw = next((v for k, v in raw.items() if str(k).lower() == part.lower()), None)
        model = model.member_model(part)
    return (raw if isinstance(raw, dict) else None), model


def _location(error: ErrorDetails) -> tuple[int | str, ...]:
    """Where the error is; a duplicate member is reported by its object, so add the member."""
    if error["type"] == "duplicate_member":
        return (*error["loc"], str(error.get("ctx", {}).get("member", "")))
    return error["loc"]


def _join(where: str, loc: tuple[int | str, ...]) -> str:
    path = where
    for part in loc:
        path += f"/{part}"
    return path


def _pop_member(data: dict[str, Any], name: str, where: str) -> object:
    """Remove and return the member ``name`` (in any casing) of ``data``."""
    keys = [key for key in data if key.lower() == name.lower()]
    if len(keys) > 1:
        duplicate = DuplicateMember(name, keys[0], keys[1])
        raise InvalidInput(str(duplicate), target=f"{where}/{name}")
    return data.pop(keys[0]) if keys else None


def _envelope(value: object, where: str) -> dict[str, Any]:
    try:
        return fold_members(_as_object(value, where), _ENVELOPE_MEMBERS)
    except DuplicateMember as exc:
        raise InvalidInput(str(exc), target=f"{where}/{exc.member}") from None


def _as_object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(_expected("a JSON object", where, value), target=where)
    return dict(value)


def _optional_object(value: object, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(_expected("a JSON object", where, value), target=where)
    return value


def _expected(what: str, where: str, value: object) -> str:
    message = f"{where or 'the body'} must be {what}"
    if is_powershell_leftover(value):
        return f"{message}, got '{value}': {POWERSHELL_DEPTH_HINT}"
    return message
