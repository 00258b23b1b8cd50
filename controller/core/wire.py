"""Base classes for NBI body models: tolerant on input, canonical on output.

Real MS-NCNBI clients (PowerShell, SDN Express wrappers, SCVMM) send member names in any casing,
numbers and booleans as strings, ``null`` for unset members, and echo back read-only members they
got from a GET. ``WireModel`` accepts all of that and always dumps the canonical camelCase form
with typed values. What it does not accept is ambiguity: two spellings of one member in one
object (``vlanID`` and ``VLANID``) are refused rather than one silently winning.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar, get_args

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from controller.core.scalars import unchecked_scalars

# What Windows PowerShell's ConvertTo-Json writes for an object nested deeper than -Depth
# (2 by default): the object's ToString() instead of the object.
_POWERSHELL_LEFTOVERS = frozenset(
    {
        "System.Collections.Hashtable",
        "System.Collections.Specialized.OrderedDictionary",
        "System.Management.Automation.PSCustomObject",
        "System.Object[]",
    }
)
_POWERSHELL_OBJECT_TEXT = re.compile(r"@\{.*\}", re.DOTALL)
POWERSHELL_DEPTH_HINT = (
    "this looks like a PowerShell object that ConvertTo-Json cut off at its depth limit; "
    "convert the body with ConvertTo-Json -Depth 100"
)


def is_powershell_leftover(value: object) -> bool:
    """Whether ``value`` is what ConvertTo-Json leaves of an object it did not descend into
    (``"@{resourceRef=/...}"``, ``"System.Collections.Hashtable"``)."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    return text in _POWERSHELL_LEFTOVERS or _POWERSHELL_OBJECT_TEXT.fullmatch(text) is not None


class DuplicateMember(ValueError):
    """One object names the same member twice, in two spellings (``properties``/``Properties``)."""

    def __init__(self, member: str, first: str, second: str) -> None:
        super().__init__(
            f"'{first}' and '{second}' are the same member {member}; send it once"
            if first != second
            else f"the member '{member}' appears more than once; send it once"
        )
        self.member = member


class WireModel(BaseModel):
    """A JSON object of the NBI wire format.

    Field aliases are the canonical member names. On input, member names are matched
    case-insensitively (against aliases and field names), ``null`` members are dropped and unknown
    members are ignored. Integers and booleans are ``IntRange`` and ``WireBool`` members (see
    ``controller.core.scalars``); a model with a bare ``int`` or ``bool`` cannot be defined.
    """

    model_config = ConfigDict(
        extra="ignore",
        coerce_numbers_to_str=True,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
    )

    _member_lookup: ClassVar[dict[str, str]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        lookup: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            annotation: Any = field.annotation
            if field.metadata:
                annotation = Annotated[annotation, *field.metadata]
            unchecked = unchecked_scalars(annotation)
            if unchecked and not _is_read_only(field.json_schema_extra):
                raise TypeError(
                    f"{cls.__name__}.{name} is a bare {unchecked[0]}: integer members are "
                    "Annotated[int, IntRange(low, high)] and boolean members WireBool"
                )
            canonical = field.alias or name
            lookup[name.lower()] = canonical
            lookup[canonical.lower()] = canonical
        cls._member_lookup = lookup

    @model_validator(mode="before")
    @classmethod
    def _fold_member_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        try:
            return fold_members(data, cls._member_lookup)
        except DuplicateMember as exc:
            raise PydanticCustomError(
                "duplicate_member", str(exc), {"member": exc.member}
            ) from None

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """On input, an optional member may also be ``null`` (it is read as absent), and a
        string member a number (``coerce_numbers_to_str``)."""
        json_schema = handler(schema)
        if handler.mode == "validation":
            target = handler.resolve_ref_schema(json_schema)
            required = set(target.get("required", ()))
            for member, member_schema in target.get("properties", {}).items():
                widened = _numbers_as_text(member_schema)
                target["properties"][member] = widened if member in required else _nullable(widened)
        return json_schema

    @classmethod
    def member_names(cls) -> frozenset[str]:
        """Every spelling of a member this model reads, lower-cased."""
        return frozenset(cls._member_lookup)

    @classmethod
    def member_model(cls, member: str) -> type[WireModel] | None:
        """The model of member ``member`` (any spelling) when it holds objects of one, or of
        lists of them; None otherwise."""
        canonical = cls._member_lookup.get(member.lower())
        for name, field in cls.model_fields.items():
            if canonical in (name, field.alias):
                return _wire_model_in(field.annotation)
        return None

    def dump(self) -> dict[str, Any]:
        """The canonical JSON form: aliases, typed values, unset members left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _wire_model_in(annotation: Any) -> type[WireModel] | None:
    """The WireModel an annotation holds (``list[Subnet] | None`` -> Subnet), if one."""
    if isinstance(annotation, type) and issubclass(annotation, WireModel):
        return annotation
    for argument in get_args(annotation):
        found = _wire_model_in(argument)
        if found is not None:
            return found
    return None


def _is_read_only(extra: object) -> bool:
    """Read-only members (documented, never read from a request) need no input rules."""
    return isinstance(extra, dict) and extra.get("readOnly") is True


def _numbers_as_text(schema: Any) -> Any:
    """``schema`` with a number also allowed wherever a free string is."""
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "string" and not {"pattern", "enum", "const"} & set(schema):
        kept = {k: v for k, v in schema.items() if k in ("default", "title", "description")}
        return {**kept, "anyOf": [_without_annotations(schema), {"type": "number"}]}
    widened = dict(schema)
    for key in ("items", "additionalProperties"):
        if key in widened:
            widened[key] = _numbers_as_text(widened[key])
    if "anyOf" in widened:
        widened["anyOf"] = [_numbers_as_text(option) for option in widened["anyOf"]]
    return widened


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    options = schema.get("anyOf")
    if options is not None and {"type": "null"} in options:
        return schema
    kept = {k: v for k, v in schema.items() if k in ("default", "title", "description")}
    branches = options if options is not None else [_without_annotations(schema)]
    return {**kept, "anyOf": [*branches, {"type": "null"}]}


def _without_annotations(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in ("default", "title", "description")}


def fold_members(data: dict[Any, Any], lookup: dict[str, str]) -> dict[str, Any]:
    """Rename members to their canonical spelling; drop nulls and members not in ``lookup``.
    Two members of ``data`` naming the same canonical member raise ``DuplicateMember``."""
    folded: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        canonical = lookup.get(key.lower())
        if canonical is None:
            continue
        if canonical in spelled:
            raise DuplicateMember(canonical, spelled[canonical], key)
        spelled[canonical] = key
        if value is not None:
            folded[canonical] = value
    return folded


class WireEnum(StrEnum):
    """A string enumeration whose values are matched case-insensitively (``"all"`` is ``All``)."""

    @classmethod
    def _missing_(cls, value: object) -> WireEnum | None:
        if isinstance(value, str):
            wanted = value.strip().lower()
            for member in cls:
                if member.value.lower() == wanted:
                    return member
        return None

    @classmethod
    def other_spellings(cls) -> tuple[str, ...]:
        """Words ``_missing_`` also accepts (``Allow`` for ``Permit``), for the JSON schema."""
        return ()

    @classmethod
    def accepts_booleans(cls) -> bool:
        return False

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if handler.mode == "serialization":
            return json_schema
        words = [member.value for member in cls] + list(cls.other_spellings())
        pattern = r"^\s*(" + "|".join(_any_case(word) for word in words) + r")\s*$"
        branches: list[JsonSchemaValue] = [{"type": "string", "pattern": pattern}]
        if cls.accepts_booleans():
            branches.append({"type": "boolean"})
        return {"anyOf": branches}


def _any_case(word: str) -> str:
    return "".join(
        f"[{c.upper()}{c.lower()}]" if c.upper() != c.lower() else re.escape(c) for c in word
    )
