"""The rules a load balancer's children obey, each checked on the child with canonical
references, or across children by the engine from what their kinds declare (400 naming the
member; the frontend ports in ``load_balancer_ports``):

* a frontend is either a private VIP of a ``subnet`` or a ``publicIPAddress``, not both;
* rules, NAT rules and outbound NAT rules reference frontends, pools and probes of their own
  load balancer;
* no two Static frontends ask for one address of one subnet (the frontends' sibling key);
* a frontend port is claimed once per frontend and protocol, across load-balancing rules and
  inbound NAT rules (``All`` claims TCP and UDP, port 0 with ``All`` claims every port);
* port 0 (every port) only with protocol ``All``, on both sides of a rule;
* an ``Http`` probe has a ``requestPath`` starting with ``/``, a ``Tcp`` probe none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from controller.core.refs import ResourceRef
from controller.core.tree import Node
from controller.errors import InvalidInput, InvalidReference
from controller.resources.load_balancer_models import (
    FrontendIPConfigurationProperties,
    InboundNatRuleProperties,
    LoadBalancingRuleProperties,
    OutboundNatRuleProperties,
    ProbeProperties,
    ProbeProtocol,
)
from controller.resources.network_interfaces import AllocationMethod
from controller.resources.slb_values import LbProtocol

RULES = "loadBalancingRules"
NAT_RULES = "inboundNatRules"
OUTBOUND_RULES = "outboundNatRules"
FRONTENDS = "frontendIPConfigurations"


def _own_load_balancer(child: Node, refs: Iterable[tuple[str, ResourceRef]]) -> None:
    """A rule's references point into its own load balancer (the one its resourceRef names,
    so the check needs nothing but the rule)."""
    load_balancer = "/".join(child.ref.split("/")[:3])
    for member, ref in refs:
        if not ref.resource_ref.lower().startswith(load_balancer.lower() + "/"):
            raise InvalidReference(
                f"{child.ref}: {member} references {ref.resource_ref}, which belongs to "
                f"another load balancer than {load_balancer}",
                target=child.target(member),
            )


def static_frontend(frontend: Node) -> tuple[str, ...] | None:
    """The (subnet, address) a Static private frontend asks for: no two frontends of one load
    balancer may ask for one (the frontends' sibling key)."""
    props = frontend.props(FrontendIPConfigurationProperties)
    if props.private_ip_allocation_method is not AllocationMethod.STATIC:
        return None
    if props.subnet is None or props.private_ip_address is None:
        return None
    return (props.subnet.resource_ref.lower(), props.private_ip_address)


def frontend_clash(frontend: Node, other: str) -> InvalidInput:
    address = frontend.props(FrontendIPConfigurationProperties).private_ip_address
    return InvalidInput(
        f"frontendIPConfigurations '{frontend.resource_id}' and '{other}' both ask for {address}",
        target=frontend.target("privateIPAddress"),
    )


def validate_frontend(node: Node) -> None:
    props = node.props(FrontendIPConfigurationProperties)
    where = f"frontendIPConfiguration '{node.resource_id}'"
    if props.public_ip_address is not None:
        if props.subnet is not None or props.private_ip_address is not None:
            member = "subnet" if props.subnet is not None else "privateIPAddress"
            raise InvalidInput(
                f"{where}: a frontend is either a publicIPAddress or a private address of a "
                f"subnet, not both; drop {member} or publicIPAddress",
                target=node.target(member),
            )
        return
    if props.subnet is None:
        raise InvalidInput(
            f"{where} needs a subnet (a VIP logical subnet, or a virtual subnet for an internal "
            "load balancer) or a publicIPAddress",
            target=node.target("subnet"),
        )
    if props.private_ip_allocation_method is AllocationMethod.STATIC and (
        props.private_ip_address is None
    ):
        raise InvalidInput(
            f"{where}: a Static frontend needs privateIPAddress",
            target=node.target("privateIPAddress"),
        )


def validate_load_balancing_rule(node: Node) -> None:
    props = node.props(LoadBalancingRuleProperties)
    refs: list[tuple[str, ResourceRef]] = [(FRONTENDS, f) for f in props.frontend_ip_configurations]
    refs.append(("backendAddressPool", props.backend_address_pool))
    if props.probe is not None:
        refs.append(("probe", props.probe))
    _own_load_balancer(node, refs)
    every_port = props.frontend_port == 0
    if every_port and props.protocol is not LbProtocol.ALL:
        raise InvalidInput(
            f"loadBalancingRule '{node.resource_id}': frontendPort 0 (every port) needs "
            "protocol All; otherwise ports are 1 to 65535",
            target=node.target("frontendPort"),
        )
    if every_port != (props.backend_port == 0):
        raise InvalidInput(
            f"loadBalancingRule '{node.resource_id}': backendPort 0 (every port) goes with "
            "frontendPort 0 only, and frontendPort 0 with backendPort 0 only",
            target=node.target("backendPort"),
        )
    _check_distinct(node, "frontendIPConfigurations", props.frontend_ip_configurations)


def validate_inbound_nat_rule(node: Node) -> None:
    frontends = node.props(InboundNatRuleProperties).frontend_ip_configurations
    _own_load_balancer(node, [(FRONTENDS, f) for f in frontends])
    _check_distinct(node, FRONTENDS, frontends)


def validate_outbound_nat_rule(node: Node) -> None:
    props = node.props(OutboundNatRuleProperties)
    refs = [(FRONTENDS, f) for f in props.frontend_ip_configurations]
    _own_load_balancer(node, [*refs, ("backendAddressPool", props.backend_address_pool)])
    _check_distinct(node, FRONTENDS, props.frontend_ip_configurations)


def validate_probe(node: Node) -> None:
    props = node.props(ProbeProperties)
    where = f"probe '{node.resource_id}'"
    if props.protocol is ProbeProtocol.HTTP:
        if not props.request_path or not props.request_path.startswith("/"):
            raise InvalidInput(
                f"{where}: an Http probe needs a requestPath starting with '/' (e.g. '/health')",
                target=node.target("requestPath"),
            )
    elif props.request_path is not None:
        raise InvalidInput(
            f"{where}: requestPath is for Http probes; a Tcp probe only opens a connection",
            target=node.target("requestPath"),
        )


def _check_distinct(node: Node, member: str, refs: Sequence[ResourceRef]) -> None:
    keys = [ref.resource_ref.lower() for ref in refs]
    if len(set(keys)) != len(keys):
        raise InvalidInput(
            f"{node.ref}: {member} names a resource twice", target=node.target(member)
        )
