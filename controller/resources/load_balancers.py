"""loadBalancers and their six child kinds ([MS-NCNBI] loadBalancers; reference 5.13).

A load balancer is one aggregate: its frontends (VIPs), backend pools, probes, load-balancing
rules, inbound NAT rules and outbound NAT rules, embedded in the body or each at its own URI,
where each is written alone (service/alone.py; what holds across children is declared on them).
References between children of one body resolve within the body, in any casing
(``/loadBalancers/LB/Probes/P``), and those of a child written alone against the stored ones.
Pool membership lives on the NIC ipConfigurations (``loadBalancerBackendAddressPools``,
``loadBalancerInboundNatRules``); every read-only back-reference is computed on read. The
models are in ``load_balancer_models``, the rules in ``load_balancer_checks``.
"""

from __future__ import annotations

from controller.core.kinds import BackRef, Kind, SiblingKey
from controller.core.shape import Shape, default
from controller.resources.load_balancer_checks import (
    NAT_RULES,
    OUTBOUND_RULES,
    RULES,
    frontend_clash,
    static_frontend,
    validate_frontend,
    validate_inbound_nat_rule,
    validate_load_balancing_rule,
    validate_outbound_nat_rule,
    validate_probe,
)
from controller.resources.load_balancer_models import (
    BackendAddressPoolProperties,
    FrontendIPConfigurationProperties,
    InboundNatRuleProperties,
    LoadBalancerProperties,
    LoadBalancingRuleProperties,
    OutboundNatRuleProperties,
    ProbeProperties,
)
from controller.resources.load_balancer_ports import FRONTEND_PORTS
from controller.resources.refs import LOAD_BALANCERS

IP_CONFIGURATIONS_KEY = "networkInterfaces/ipConfigurations"
RULES_KEY = f"{LOAD_BALANCERS}/{RULES}"
NAT_RULES_KEY = f"{LOAD_BALANCERS}/{NAT_RULES}"
OUTBOUND_RULES_KEY = f"{LOAD_BALANCERS}/{OUTBOUND_RULES}"

LOAD_BALANCERS_KIND = Kind(
    name=LOAD_BALANCERS,
    title="LoadBalancer",
    properties=LoadBalancerProperties,
    description="A software load balancer: VIPs, backend pools, probes, rules and NAT rules.",
)

FRONTEND_IP_CONFIGURATIONS = Kind(
    name="frontendIPConfigurations",
    title="FrontendIPConfiguration",
    properties=FrontendIPConfigurationProperties,
    parent=LOAD_BALANCERS_KIND,
    validate=validate_frontend,
    sibling_key=SiblingKey(("subnet", "privateIPAddress"), frontend_clash, static_frontend),
    # A VIP more on a load balancer of many costs one frontend (migration 0011 gave the Static
    # frontends stored before their sibling key).
    written_alone=True,
    backrefs=(
        BackRef(RULES, (RULES_KEY,), via=("frontendIPConfigurations",)),
        BackRef(NAT_RULES, (NAT_RULES_KEY,), via=("frontendIPConfigurations",)),
        BackRef(OUTBOUND_RULES, (OUTBOUND_RULES_KEY,), via=("frontendIPConfigurations",)),
    ),
    description="A VIP of a load balancer: a private address of a subnet, or a public IP.",
)

BACKEND_ADDRESS_POOLS = Kind(
    name="backendAddressPools",
    title="BackendAddressPool",
    properties=BackendAddressPoolProperties,
    parent=LOAD_BALANCERS_KIND,
    backrefs=(
        BackRef(
            "backendIPConfigurations",
            (IP_CONFIGURATIONS_KEY,),
            via=("loadBalancerBackendAddressPools",),
        ),
        BackRef(RULES, (RULES_KEY,), via=("backendAddressPool",)),
        BackRef(OUTBOUND_RULES, (OUTBOUND_RULES_KEY,), via=("backendAddressPool",)),
    ),
    # A pool is nothing but its name (its members name it): nothing of its siblings decides.
    written_alone=True,
    description="The DIPs behind a VIP: the NIC ipConfigurations that name the pool.",
)

LOAD_BALANCING_RULES = Kind(
    name=RULES,
    title="LoadBalancingRule",
    properties=LoadBalancingRuleProperties,
    shape=Shape(
        default("enableFloatingIP", False),
        default("idleTimeoutInMinutes", 4),
        default("loadDistribution", "Default"),
    ),
    parent=LOAD_BALANCERS_KIND,
    validate=validate_load_balancing_rule,
    sibling_claims=FRONTEND_PORTS,
    # One more rule on a load balancer of many costs one rule (the NAT rules' reasons).
    written_alone=True,
    description="Balances a frontend port over the DIPs of a backend pool.",
)

PROBES = Kind(
    name="probes",
    title="Probe",
    properties=ProbeProperties,
    shape=Shape(default("intervalInSeconds", 15), default("numberOfProbes", 2)),
    parent=LOAD_BALANCERS_KIND,
    validate=validate_probe,
    written_alone=True,
    backrefs=(BackRef(RULES, (RULES_KEY,), via=("probe",)),),
    description="A health probe the hosts of the DIPs run; a DIP that fails it gets no flows.",
)

INBOUND_NAT_RULES = Kind(
    name=NAT_RULES,
    title="InboundNatRule",
    properties=InboundNatRuleProperties,
    shape=Shape(default("idleTimeoutInMinutes", 4), default("enableFloatingIP", False)),
    parent=LOAD_BALANCERS_KIND,
    validate=validate_inbound_nat_rule,
    sibling_claims=FRONTEND_PORTS,
    # One more NAT rule (a VM's RDP port, say) on a load balancer of 1,000 costs one rule.
    written_alone=True,
    backrefs=(
        BackRef(
            "backendIPConfiguration",
            (IP_CONFIGURATIONS_KEY,),
            via=("loadBalancerInboundNatRules",),
            single=True,
        ),
    ),
    description="Forwards one frontend port to one NIC ipConfiguration.",
)

OUTBOUND_NAT_RULES = Kind(
    name=OUTBOUND_RULES,
    title="OutboundNatRule",
    properties=OutboundNatRuleProperties,
    parent=LOAD_BALANCERS_KIND,
    validate=validate_outbound_nat_rule,
    # Its frontends and pool are found in the database, as a load-balancing rule's are.
    written_alone=True,
    description="Source-NATs what the DIPs of a pool send out to a frontend's VIP.",
)

KINDS = (
    LOAD_BALANCERS_KIND,
    FRONTEND_IP_CONFIGURATIONS,
    BACKEND_ADDRESS_POOLS,
    LOAD_BALANCING_RULES,
    PROBES,
    INBOUND_NAT_RULES,
    OUTBOUND_NAT_RULES,
)
