"""The scalar types every integer and boolean member of the wire models is made of.

An integer member is ``Annotated[int, IntRange(low, high)]`` and a boolean member ``WireBool``:
``WireModel`` refuses to define a model with a bare ``int`` or ``bool`` (``unchecked_scalars``),
so no member can reach the database or a codec unbounded or loosely typed. What they accept:

* an integer: a JSON number with no fraction, or a string of digits (``"11"``, as PowerShell
  scripts send it), within ``low..high``; never a boolean (``true`` is not 1);
* a boolean: ``true``/``false``, or ``"True"``/``"false"`` in any casing; never a number.

Their JSON schema says the same: tolerant on input (``validation`` mode), canonical on output.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

INTEGER_TEXT = r"^\s*[+-]?[0-9]+\s*$"
BOOLEAN_TEXT = r"^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$"
_INTEGER = re.compile(INTEGER_TEXT)
# Digits beyond this are no integer any member holds; refused before int() parses them.
_MAX_INTEGER_TEXT = 64


def _integer(value: object) -> object:
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be an integer, not a boolean")
    if isinstance(value, str):
        if len(value) > _MAX_INTEGER_TEXT or not _INTEGER.match(value):
            raise PydanticCustomError("int_parsing", "Input should be an integer")
        return int(value)
    return value


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise PydanticCustomError("bool_type", "Input should be true or false")


@dataclass(frozen=True)
class IntRange:
    """The inclusive range of an integer member: ``Annotated[int, IntRange(0, 4094)]``."""

    low: int
    high: int

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        bounded = core_schema.int_schema(ge=self.low, le=self.high)
        return core_schema.no_info_before_validator_function(_integer, bounded)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        number = {"type": "integer", "minimum": self.low, "maximum": self.high}
        if handler.mode == "serialization":
            return number
        return {"anyOf": [number, {"type": "string", "pattern": INTEGER_TEXT}]}


@dataclass(frozen=True)
class _Boolean:
    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _boolean, serialization=core_schema.plain_serializer_function_ser_schema(bool)
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        if handler.mode == "serialization":
            return {"type": "boolean"}
        return {"anyOf": [{"type": "boolean"}, {"type": "string", "pattern": BOOLEAN_TEXT}]}


WireBool = Annotated[bool, _Boolean()]


def unchecked_scalars(annotation: Any) -> list[str]:
    """The ``int`` and ``bool`` inside ``annotation`` that are not an ``IntRange`` integer or a
    ``WireBool`` (by type name); empty when every one is."""
    if get_origin(annotation) is Annotated:
        base, *metadata = get_args(annotation)
        if base is int and any(isinstance(m, IntRange) for m in metadata):
            return []
        if base is bool and any(isinstance(m, _Boolean) for m in metadata):
            return []
        return unchecked_scalars(base)
    if annotation is int or annotation is bool:
        return [annotation.__name__]
    if get_origin(annotation) in (Union, types.UnionType) or get_args(annotation):
        return [found for arg in get_args(annotation) for found in unchecked_scalars(arg)]
    return []
