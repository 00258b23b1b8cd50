"""accessControlLists and their aclRules ([MS-NCNBI] accessControlLists; reference 5.7).

An ACL applies to every ipConfiguration in a subnet that references it and to every
ipConfiguration that references it directly. Rules are evaluated by ascending priority, first
match wins; the direction is seen from the VM. Priorities are unique per ACL and direction.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from controller.core.kinds import BackRef, Kind, SiblingKey
from controller.core.scalars import IntRange
from controller.core.shape import Shape, default
from controller.core.tree import Node
from controller.core.values import PortRange, ShortText, parse_address, parse_prefix
from controller.core.wire import WireEnum, WireModel
from controller.errors import InvalidInput


class Protocol(WireEnum):
    TCP = "TCP"
    UDP = "UDP"
    ICMPV4 = "ICMPv4"
    ICMPV6 = "ICMPv6"
    ALL = "All"


class RuleAction(WireEnum):
    ALLOW = "Allow"
    DENY = "Deny"


class DefaultAction(WireEnum):
    PERMIT = "Permit"
    DENY = "Deny"

    @classmethod
    def _missing_(cls, value: object) -> DefaultAction | None:
        # "Allow" is what clients used to Azure NSGs send; NC's own word is "Permit".
        if isinstance(value, str) and value.strip().lower() == "allow":
            return cls.PERMIT
        found = super()._missing_(value)
        return found if isinstance(found, DefaultAction) else None


class Direction(WireEnum):
    INBOUND = "Inbound"
    OUTBOUND = "Outbound"


class Logging(WireEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"


ADDRESS_TAGS = ("Internet", "VirtualNetwork", "AzureLoadBalancer")


def _canonical_address_match(value: str) -> str:
    """``*``, a service tag, an IP address or a CIDR prefix."""
    text = value.strip()
    if text == "*":
        return text
    for tag in ADDRESS_TAGS:
        if text.lower() == tag.lower():
            return tag
    if "/" in text:
        return str(parse_prefix(text))
    try:
        return str(parse_address(text))
    except ValueError:
        tags = ", ".join(ADDRESS_TAGS)
        raise ValueError(
            f"'{value}' is not '*', an IP address, a CIDR prefix or one of {tags}"
        ) from None


AddressMatch = Annotated[str, AfterValidator(_canonical_address_match)]


class AclRuleProperties(WireModel):
    protocol: Protocol
    source_port_range: PortRange = Field(alias="sourcePortRange")
    destination_port_range: PortRange = Field(alias="destinationPortRange")
    source_address_prefix: AddressMatch = Field(alias="sourceAddressPrefix")
    destination_address_prefix: AddressMatch = Field(alias="destinationAddressPrefix")
    action: RuleAction
    priority: Annotated[int, IntRange(1, 65535)]
    type: Direction
    logging: Logging = Logging.ENABLED
    description: ShortText | None = None


class AccessControlListProperties(WireModel):
    inbound_default_action: DefaultAction = Field(
        default=DefaultAction.PERMIT, alias="inboundDefaultAction"
    )
    outbound_default_action: DefaultAction = Field(
        default=DefaultAction.PERMIT, alias="outboundDefaultAction"
    )


def validate_acl_rule(rule: Node) -> None:
    """The address families of a rule agree (and with an ICMP protocol)."""
    _check_families(rule, rule.props(AclRuleProperties))


def _priority_clash(rule: Node, other: str) -> InvalidInput:
    props = rule.props(AclRuleProperties)
    return InvalidInput(
        f"aclRules '{rule.resource_id}' and '{other}' both have priority "
        f"{props.priority} for {props.type.value} traffic; priorities must be unique "
        "per ACL and direction",
        target=rule.target("priority"),
    )


def _family(match: str) -> int | None:
    if match == "*" or match in ADDRESS_TAGS:
        return None
    # A canonical prefix or address, so parsed (and cached) as such.
    return (parse_prefix(match) if "/" in match else parse_address(match)).version


def _check_families(rule: Node, props: AclRuleProperties) -> None:
    source = _family(props.source_address_prefix)
    destination = _family(props.destination_address_prefix)
    if source is not None and destination is not None and source != destination:
        raise InvalidInput(
            f"aclRules '{rule.resource_id}' mixes IPv{source} and IPv{destination} prefixes",
            target=rule.target("destinationAddressPrefix"),
        )
    if props.protocol is Protocol.ICMPV4 and 6 in (source, destination):
        raise InvalidInput(
            f"aclRules '{rule.resource_id}' matches ICMPv4 with an IPv6 prefix",
            target=rule.target("protocol"),
        )
    if props.protocol is Protocol.ICMPV6 and 4 in (source, destination):
        raise InvalidInput(
            f"aclRules '{rule.resource_id}' matches ICMPv6 with an IPv4 prefix",
            target=rule.target("protocol"),
        )


ACCESS_CONTROL_LISTS = Kind(
    name="accessControlLists",
    title="AccessControlList",
    properties=AccessControlListProperties,
    shape=Shape(
        default("inboundDefaultAction", "Permit"), default("outboundDefaultAction", "Permit")
    ),
    backrefs=(
        BackRef("ipConfigurations", ("networkInterfaces/ipConfigurations",)),
        BackRef("subnets", ("virtualNetworks/subnets", "logicalNetworks/subnets")),
    ),
    description="A list of ACL rules applied to subnets and ipConfigurations.",
)

ACL_RULES = Kind(
    name="aclRules",
    title="AclRule",
    properties=AclRuleProperties,
    shape=Shape(default("logging", "Enabled")),
    parent=ACCESS_CONTROL_LISTS,
    validate=validate_acl_rule,
    sibling_key=SiblingKey(("type", "priority"), _priority_clash),
    written_alone=True,
    description="One rule of an access control list.",
)

KINDS = (ACCESS_CONTROL_LISTS, ACL_RULES)
