"""WireModel and WireEnum: any casing of member names and enum values parses to one dump."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.core.scalars import WireBool
from controller.core.wire import WireModel
from controller.resources.access_control_lists import AclRuleProperties, Protocol
from controller.resources.servers import ServerProperties

RULE: dict[str, Any] = {
    "protocol": "TCP",
    "sourcePortRange": "80",
    "destinationPortRange": "1024-2048",
    "sourceAddressPrefix": "10.0.0.0/24",
    "destinationAddressPrefix": "Internet",
    "action": "Allow",
    "priority": 100,
    "type": "Inbound",
    "logging": "Disabled",
    "description": "web",
}
SERVER: dict[str, Any] = {
    "connections": [
        {
            "managementAddresses": ["host1.contoso.com", "10.0.0.5"],
            "credential": {"resourceRef": "/credentials/C"},
            "credentialType": "X509Certificate",
            "port": 6645,
        }
    ],
    "certificate": "QUJD",
}
ENUM_MEMBERS = {"protocol", "action", "type", "logging", "credentialType"}
KNOWN_NAMES = {name.lower() for name in RULE} | set(AclRuleProperties.model_fields)

PROBE = settings(deadline=None, max_examples=60)


def recase(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(text, flips, strict=True))


def recased(draw: st.DrawFn, value: Any, *, enums: bool) -> Any:
    """``value`` with every member name (and, if ``enums``, every enum value) recased."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if enums and key in ENUM_MEMBERS and isinstance(item, str):
                item = recase(draw, item)
            out[recase(draw, key)] = recased(draw, item, enums=enums)
        return out
    if isinstance(value, list):
        return [recased(draw, item, enums=enums) for item in value]
    return value


@PROBE
@given(st.data())
def test_member_names_in_any_case_parse_to_the_canonical_dump(data: st.DataObject) -> None:
    body = recased(data.draw, RULE, enums=False)
    assert AclRuleProperties.model_validate(body).dump() == RULE


@PROBE
@given(st.data())
def test_nested_members_in_any_case_parse_to_the_canonical_dump(data: st.DataObject) -> None:
    body = recased(data.draw, SERVER, enums=False)
    assert ServerProperties.model_validate(body).dump() == SERVER


@PROBE
@given(st.data())
def test_enum_values_in_any_case_parse_to_the_canonical_dump(data: st.DataObject) -> None:
    body = recased(data.draw, RULE, enums=True)
    assert AclRuleProperties.model_validate(body).dump() == RULE


@PROBE
@given(st.integers(min_value=1, max_value=65535), st.booleans())
def test_numbers_as_strings_dump_as_numbers(priority: int, as_text: bool) -> None:
    body = {**RULE, "priority": str(priority) if as_text else priority}
    assert AclRuleProperties.model_validate(body).dump()["priority"] == priority


@PROBE
@given(st.sampled_from(["true", "True", "TRUE", "false", "False", "FALSE", True, False]))
def test_booleans_as_strings(value: str | bool) -> None:
    class Flag(WireModel):
        enabled: WireBool

    expected = value if isinstance(value, bool) else value.lower() == "true"
    assert Flag.model_validate({"Enabled": value}).dump() == {"enabled": expected}


@PROBE
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k.lower() not in KNOWN_NAMES),
        st.one_of(st.none(), st.integers(), st.text(max_size=5)),
        max_size=4,
    )
)
def test_unknown_members_are_ignored(extra: dict[str, Any]) -> None:
    assert AclRuleProperties.model_validate({**RULE, **extra}).dump() == RULE


@PROBE
@given(st.sets(st.sampled_from(["description", "logging"])))
def test_null_members_are_treated_as_absent(nulled: set[str]) -> None:
    body = {**RULE, **dict.fromkeys(nulled)}
    expected = {k: v for k, v in RULE.items() if k not in nulled}
    if "logging" in nulled:
        expected["logging"] = "Enabled"
    assert AclRuleProperties.model_validate(body).dump() == expected


def test_dump_is_a_fixed_point() -> None:
    once = AclRuleProperties.model_validate(RULE).dump()
    assert AclRuleProperties.model_validate(once).dump() == once


@PROBE
@given(st.sampled_from(list(Protocol)), st.data())
def test_wire_enum_matches_any_casing(member: Protocol, data: st.DataObject) -> None:
    spelled = recase(data.draw, member.value)
    assert Protocol(spelled) is member
    assert Protocol(f"  {spelled} ") is member


def test_wire_enum_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="SCTP"):
        Protocol("SCTP")
    with pytest.raises(ValidationError):
        AclRuleProperties.model_validate({**RULE, "protocol": "SCTP"})
