"""References between resources: ``{"resourceRef": "/accessControlLists/A"}``.

A reference type names the resource kinds it may point at; the service resolves every reference
of a written resource against the store (missing target: 400) and records it, so deleting a
referenced resource is refused (409) and reverse references can be computed.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from controller.core.wire import POWERSHELL_DEPTH_HINT, WireModel, is_powershell_leftover


class ResourceRef(WireModel):
    """A link to another resource. Clients may send the whole target object; only
    ``resourceRef`` is used. A bare string is accepted as the reference itself."""

    # Kind keys (``accessControlLists``, ``virtualNetworks/subnets``) this reference may target;
    # empty means any kind.
    targets: ClassVar[tuple[str, ...]] = ()
    # Whether ``target_problem`` must see the target's properties.
    checks_target: ClassVar[bool] = False
    # Whether the target may be referenced by one resource at most (a public IP is bound to one
    # NIC or frontend, an inbound NAT rule to one backend): a second referrer is refused.
    exclusive: ClassVar[bool] = False

    resource_ref: str = Field(alias="resourceRef", min_length=1, max_length=2048)

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_string(cls, data: Any) -> Any:
        if is_powershell_leftover(data):
            raise PydanticCustomError("powershell_truncated", POWERSHELL_DEPTH_HINT)
        if isinstance(data, str):
            return {"resourceRef": data}
        return data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = super().__get_pydantic_json_schema__(schema, handler)
        if handler.mode == "validation":
            return {"anyOf": [json_schema, {"type": "string", "minLength": 1}]}
        return json_schema

    @classmethod
    def target_problem(cls, properties: dict[str, Any]) -> str | None:
        """Why a target with these (stored) properties cannot be referenced; None if it can."""
        return None


@dataclass(frozen=True)
class FoundRef:
    """A reference found inside a properties model; ``member`` is its dotted path without
    list indexes (``connections.credential``), the name under which reverse links are kept."""

    member: str
    ref: ResourceRef


def iter_refs(model: BaseModel) -> Iterator[FoundRef]:
    """Every ResourceRef inside ``model``, depth first, in field order."""
    yield from _walk_model(model, "")


@functools.cache
def may_hold_refs(model_type: type[BaseModel]) -> bool:
    """Whether a model of this type can hold a ResourceRef anywhere, by its fields' types: one
    that cannot (an aclRule's properties) is not walked, which every write did for every node
    of its aggregate. Models are validated from documents, so a field holds its declared type."""
    return any(_may_hold(field.annotation) for field in model_type.model_fields.values())


def _may_hold(annotation: object) -> bool:
    origin = get_origin(annotation)
    if origin is Literal:
        return False
    if origin is Annotated:  # the type, not its validators
        return _may_hold(get_args(annotation)[0])
    if origin is not None:  # X | None, list[X], dict[K, V]
        return any(_may_hold(arg) for arg in get_args(annotation) if arg is not Ellipsis)
    if isinstance(annotation, type):
        if issubclass(annotation, ResourceRef):
            return True
        return issubclass(annotation, BaseModel) and may_hold_refs(annotation)
    return annotation is not None  # Any, a forward reference: it might


def _walk_model(model: BaseModel, prefix: str) -> Iterator[FoundRef]:
    if not may_hold_refs(type(model)):
        return
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if value is not None:
            yield from _walk_value(value, prefix + (field.alias or name))


def _walk_value(value: object, path: str) -> Iterator[FoundRef]:
    if isinstance(value, ResourceRef):
        yield FoundRef(path, value)
    elif isinstance(value, BaseModel):
        yield from _walk_model(value, path + ".")
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk_value(item, path)
