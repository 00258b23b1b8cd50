"""Every integer member of every wire model has a range, and every boolean is a WireBool.

The rule lives in one place (``WireModel``, with ``controller.core.scalars``): a model with a
bare ``int`` or ``bool`` cannot even be defined. The walk below checks the registered kinds
independently, down to their nested models, so a future kind cannot slip past it either.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, get_args, get_origin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from controller.core.scalars import IntRange, WireBool, unchecked_scalars
from controller.core.wire import WireModel
from controller.resources import REGISTRY


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models(arg)


def every_member() -> Iterator[tuple[str, Any]]:
    """(``Model.member``, full annotation) of every member of every registered kind's model and
    of the models nested in them."""
    pending: list[type[BaseModel]] = [kind.properties for kind in REGISTRY.kinds]
    seen: set[type[BaseModel]] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            annotation: Any = field.annotation
            if field.metadata:
                annotation = Annotated[annotation, *field.metadata]
            yield f"{model.__name__}.{name}", annotation
            pending.extend(_models(field.annotation))


def _ranges(annotation: Any) -> Iterator[IntRange]:
    if get_origin(annotation) is Annotated:
        yield from (m for m in get_args(annotation)[1:] if isinstance(m, IntRange))
    for arg in get_args(annotation):
        yield from _ranges(arg)


MEMBERS = dict(every_member())


def test_the_walk_finds_the_integer_members() -> None:
    assert "PortSettings.storm_limit" in MEMBERS
    assert "QosSettings.outbound_maximum_mbps" in MEMBERS
    assert "LogicalSubnetProperties.vlan_id" in MEMBERS


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_every_integer_is_bounded_and_every_boolean_strict(member: str) -> None:
    assert unchecked_scalars(MEMBERS[member]) == [], member


@pytest.mark.parametrize("member", sorted(m for m in MEMBERS if list(_ranges(MEMBERS[m]))))
def test_every_range_fits_a_json_number_exactly(member: str) -> None:
    for bounds in _ranges(MEMBERS[member]):
        assert -(2**53) < bounds.low <= bounds.high < 2**53, member


@pytest.mark.parametrize("bare", [int, bool, int | None, list[int], dict[str, bool]])
def test_a_model_with_a_bare_int_or_bool_cannot_be_defined(bare: Any) -> None:
    with pytest.raises(TypeError, match="bare"):

        class Loose(WireModel):
            member: bare  # type: ignore[valid-type]


class Sample(WireModel):
    count: Annotated[int, IntRange(0, 10)] = 0
    flag: WireBool = False


@settings(deadline=None, max_examples=60)
@given(st.integers(min_value=0, max_value=10), st.booleans(), st.booleans())
def test_integers_as_numbers_or_digits_booleans_as_words(
    count: int, flag: bool, as_text: bool
) -> None:
    body = {"count": f" {count} " if as_text else count, "flag": str(flag) if as_text else flag}
    assert Sample.model_validate(body).dump() == {"count": count, "flag": flag}


@pytest.mark.parametrize(
    "body",
    [{"count": True}, {"count": "1.0"}, {"count": 11}, {"count": "-1"}, {"count": "9" * 65},
     {"flag": 1}, {"flag": "yes"}, {"flag": "1"}, {"flag": 0}],
)  # fmt: skip
def test_what_is_no_integer_or_boolean_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Sample.model_validate(body)
