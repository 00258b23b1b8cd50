"""Which properties models can hold references (``may_hold_refs``): the walk that finds a
written aggregate's references skips the others, so the answer must never be a wrong "no"."""

from __future__ import annotations

import orjson
import pytest

from controller.core.kinds import Kind
from controller.core.refs import iter_refs, may_hold_refs
from controller.resources import REGISTRY
from controller.resources.access_control_lists import AclRuleProperties
from controller.resources.network_interfaces import IpConfigurationProperties


@pytest.mark.parametrize("kind", REGISTRY.kinds, ids=lambda kind: kind.key)
def test_a_model_may_hold_references_exactly_when_its_schema_has_one(kind: Kind) -> None:
    """Checked against the model's own JSON schema, which names every member it accepts."""
    schema = orjson.dumps(kind.properties.model_json_schema(by_alias=True))
    assert may_hold_refs(kind.properties) == (b'"resourceRef"' in schema)


def test_a_model_without_references_is_not_walked() -> None:
    rule = AclRuleProperties.model_validate(
        {
            "protocol": "TCP",
            "sourcePortRange": "*",
            "destinationPortRange": "80",
            "sourceAddressPrefix": "*",
            "destinationAddressPrefix": "10.0.0.0/8",
            "action": "Allow",
            "priority": 100,
            "type": "Inbound",
        }
    )
    assert not may_hold_refs(AclRuleProperties)
    assert list(iter_refs(rule)) == []


def test_references_are_still_found_where_they_may_be() -> None:
    config = IpConfigurationProperties.model_validate(
        {"subnet": {"resourceRef": "/virtualNetworks/v/subnets/s"}}
    )
    assert may_hold_refs(IpConfigurationProperties)
    assert [(found.member, found.ref.resource_ref) for found in iter_refs(config)] == [
        ("subnet", "/virtualNetworks/v/subnets/s")
    ]
