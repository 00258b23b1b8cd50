"""Response shapes: how a declared member is rendered, and that every kind's declaration agrees
with its properties model (a default the controller would refuse on a read-modify-write, or
that differs from what it stores, is a bug in the declaration)."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

from controller.core.kinds import Kind
from controller.core.shape import Shape, default, nested, read_only
from controller.core.wire import WireModel
from controller.resources import REGISTRY

PORT = Shape(
    default("portSettings", {}, default("vmqWeight", 100), default("stormLimit", 0)),
    default("pools", []),
    nested("router", default("peers", [], default("asn", 1))),
    read_only("elements", [], list[str]),
)


def test_absent_members_get_their_default() -> None:
    assert PORT.render({}) == {
        "portSettings": {"vmqWeight": 100, "stormLimit": 0},
        "pools": [],
        "elements": [],
    }


def test_what_the_document_holds_wins_member_by_member() -> None:
    document = {"portSettings": {"vmqWeight": 7, "other": "x"}, "pools": [{"resourceRef": "/p"}]}
    assert PORT.render(document) == {
        "portSettings": {"vmqWeight": 7, "other": "x", "stormLimit": 0},
        "pools": [{"resourceRef": "/p"}],
        "elements": [],
    }


def test_nested_members_fill_each_object_of_an_array_only_when_present() -> None:
    assert "router" not in PORT.render({})
    rendered = PORT.render({"router": {"peers": [{"asn": 5}, {"name": "r2"}]}})
    assert rendered["router"] == {"peers": [{"asn": 5}, {"name": "r2", "asn": 1}]}
    assert PORT.render({"router": {}})["router"] == {"peers": []}


def test_read_only_members_are_rendered_whatever_the_document_holds() -> None:
    assert PORT.render({"elements": ["sent"]})["elements"] == []


def test_the_stored_document_is_left_alone_and_defaults_are_never_shared() -> None:
    document: dict[str, Any] = {"portSettings": {"vmqWeight": 7}}
    first = PORT.render(document)
    assert document == {"portSettings": {"vmqWeight": 7}}
    first["pools"].append("x")
    first["portSettings"]["stormLimit"] = 9
    second = PORT.render({})
    assert second["pools"] == []
    assert second["portSettings"]["stormLimit"] == 0


def test_flat_names_nested_members_by_path() -> None:
    assert [path for path, _ in PORT.flat()] == [
        "portSettings",
        "portSettings.vmqWeight",
        "portSettings.stormLimit",
        "pools",
        "router",
        "router.peers",
        "router.peers[].asn",
        "elements",
    ]


# -- the declarations of the registry ----------------------------------------------------


def _object_model(annotation: Any) -> type[WireModel]:
    """The WireModel of a member (``X``, ``X | None``, ``list[X]``)."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, WireModel):
            return candidate
        inner = getattr(candidate, "__args__", ())
        if inner and isinstance(inner[0], type) and issubclass(inner[0], WireModel):
            return inner[0]
    raise AssertionError(f"{annotation} is no object or array of objects")


def _adapter(field: FieldInfo) -> TypeAdapter[Any]:
    annotation = field.annotation
    return TypeAdapter(Annotated[annotation, *field.metadata] if field.metadata else annotation)


def _check_declaration(where: str, model: type[BaseModel], shape: Shape) -> None:
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    declared = {member.name: member for member in shape.members}
    for member in shape.members:
        if member.read_only is not None:
            assert member.name not in fields, f"{where}.{member.name} is a model member"
            continue
        assert member.name in fields, f"{where}.{member.name} is no member of {model.__name__}"
        field = fields[member.name]
        adapter = _adapter(field)
        value = member.rendered_default()
        if value is not None:
            # The default is a value the controller accepts (a client may PUT back what it
            # read) and is already canonical.
            canonical = adapter.dump_python(
                adapter.validate_python(value), mode="json", by_alias=True, exclude_none=True
            )
            assert canonical == value, f"{where}.{member.name}: {value} reads as {canonical}"
        if member.shape is not None:
            inner = _object_model(field.annotation)
            _check_declaration(f"{where}.{member.name}", inner, member.shape)
    for name, field in fields.items():
        if field.is_required():
            continue
        stored = field.get_default(call_default_factory=True)
        if stored is None:
            continue
        # A member the model always stores is one NC always renders: declared, same value.
        assert name in declared, f"{where}.{name} is not declared"
        assert declared[name].always, f"{where}.{name} is declared as rendered only when sent"
        dumped = _adapter(field).dump_python(stored, mode="json", by_alias=True, exclude_none=True)
        assert declared[name].value == dumped, f"{where}.{name}: model default {dumped}"


@pytest.mark.parametrize("kind", REGISTRY.kinds, ids=lambda kind: kind.key)
def test_every_declared_member_agrees_with_the_model(kind: Kind) -> None:
    _check_declaration(kind.key, kind.properties, kind.shape)


@pytest.mark.parametrize("kind", REGISTRY.kinds, ids=lambda kind: kind.key)
def test_read_only_members_are_no_other_member_of_the_kind(kind: Kind) -> None:
    others = {backref.member for backref in kind.backrefs}
    others |= {member for member, _ in kind.computed_members}
    others |= {child.name for child in REGISTRY.children_of(kind)}
    others |= {"provisioningState", "configurationState"}
    assert others.isdisjoint(member.name for member in kind.shape.members)
