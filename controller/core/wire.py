"""Base classes for NBI body models: tolerant on input, canonical on output.

Real MS-NCNBI clients (PowerShell, SDN Express wrappers, SCVMM) send member names in any casing,
numbers and booleans as strings, ``null`` for unset members, and echo back read-only members they
got from a GET. ``WireModel`` accepts all of that and always dumps the canonical camelCase form
with typed values.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator


class WireModel(BaseModel):
    """A JSON object of the NBI wire format.

    Field aliases are the canonical member names. On input, member names are matched
    case-insensitively (against aliases and field names), ``null`` members are dropped and unknown
    members are ignored; pydantic's lax mode turns ``"100"`` into ``100`` and ``"True"`` into
    ``True``.
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
            canonical = field.alias or name
            lookup[name.lower()] = canonical
            lookup[canonical.lower()] = canonical
        cls._member_lookup = lookup

    @model_validator(mode="before")
    @classmethod
    def _fold_member_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return fold_members(data, cls._member_lookup)

    def dump(self) -> dict[str, Any]:
        """The canonical JSON form: aliases, typed values, unset members left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def fold_members(data: dict[Any, Any], lookup: dict[str, str]) -> dict[str, Any]:
    """Rename members to their canonical spelling; drop nulls and members not in ``lookup``."""
    folded: dict[str, Any] = {}
    for key, value in data.items():
        if value is None or not isinstance(key, str):
            continue
        canonical = lookup.get(key.lower())
        if canonical is not None:
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
