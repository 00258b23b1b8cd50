"""The properties of a load balancer and of its six child kinds ([MS-NCNBI] loadBalancers;
reference 5.13), with NC's member names and defaults. Read-only back-references
(``loadBalancingRules`` of a frontend, ``backendIPConfigurations`` of a pool, ...) are not
members here: they are computed on read, and what a client echoes back is ignored.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from controller.core.values import OptionalIPAddress
from controller.core.wire import WireEnum, WireModel
from controller.resources.network_interfaces import AllocationMethod
from controller.resources.refs import (
    BackendPoolRef,
    FrontendRef,
    ProbeRef,
    PublicIPAddressRef,
    SubnetRef,
)
from controller.resources.slb_values import (
    Flag,
    IdleTimeout,
    LbProtocol,
    Port,
    ProbeCount,
    ProbeInterval,
    RulePort,
)


class LoadDistribution(WireEnum):
    """How flows spread over DIPs: by 5-tuple (``Default``), by source address, or by source
    address and protocol (session affinity)."""

    DEFAULT = "Default"
    SOURCE_IP = "SourceIP"
    SOURCE_IP_PROTOCOL = "SourceIPProtocol"


class ProbeProtocol(WireEnum):
    TCP = "Tcp"
    HTTP = "Http"


class LoadBalancerProperties(WireModel):
    """A load balancer has nothing of its own but its child collections."""


class FrontendIPConfigurationProperties(WireModel):
    """A VIP: a private address of ``subnet`` (a logical subnet holding VIP pools, or a virtual
    subnet for an internal load balancer), or the address of ``publicIPAddress``."""

    private_ip_address: OptionalIPAddress = Field(default=None, alias="privateIPAddress")
    private_ip_allocation_method: AllocationMethod | None = Field(
        default=None, alias="privateIPAllocationMethod"
    )
    subnet: SubnetRef | None = None
    public_ip_address: PublicIPAddressRef | None = Field(default=None, alias="publicIPAddress")

    @model_validator(mode="after")
    def _default_method(self) -> Self:
        if self.private_ip_allocation_method is None:
            static = self.private_ip_address is not None
            self.private_ip_allocation_method = (
                AllocationMethod.STATIC if static else AllocationMethod.DYNAMIC
            )
        return self


class BackendAddressPoolProperties(WireModel):
    """The members of a pool are the NIC ipConfigurations that name it in their
    ``loadBalancerBackendAddressPools`` (shown read-only as ``backendIPConfigurations``)."""


def _default_backend_port(frontend: int, backend: int | None) -> int:
    return frontend if backend is None else backend


class LoadBalancingRuleProperties(WireModel):
    protocol: LbProtocol
    frontend_port: RulePort = Field(alias="frontendPort")
    # The frontend port when omitted.
    backend_port: RulePort | None = Field(default=None, alias="backendPort")
    frontend_ip_configurations: list[FrontendRef] = Field(
        alias="frontendIPConfigurations", min_length=1
    )
    backend_address_pool: BackendPoolRef = Field(alias="backendAddressPool")
    probe: ProbeRef | None = None
    enable_floating_ip: Flag = Field(default=False, alias="enableFloatingIP")
    idle_timeout_in_minutes: IdleTimeout = Field(default=4, alias="idleTimeoutInMinutes")
    load_distribution: LoadDistribution = Field(
        default=LoadDistribution.DEFAULT, alias="loadDistribution"
    )

    @model_validator(mode="after")
    def _default_ports(self) -> Self:
        self.backend_port = _default_backend_port(self.frontend_port, self.backend_port)
        return self


class ProbeProperties(WireModel):
    protocol: ProbeProtocol
    port: Port
    request_path: str | None = Field(default=None, max_length=2048, alias="requestPath")
    interval_in_seconds: ProbeInterval = Field(default=15, alias="intervalInSeconds")
    number_of_probes: ProbeCount = Field(default=2, alias="numberOfProbes")


class InboundNatRuleProperties(WireModel):
    protocol: LbProtocol
    frontend_ip_configurations: list[FrontendRef] = Field(
        alias="frontendIPConfigurations", min_length=1
    )
    frontend_port: Port = Field(alias="frontendPort")
    # The frontend port when omitted.
    backend_port: Port | None = Field(default=None, alias="backendPort")
    idle_timeout_in_minutes: IdleTimeout = Field(default=4, alias="idleTimeoutInMinutes")
    enable_floating_ip: Flag = Field(default=False, alias="enableFloatingIP")

    @model_validator(mode="after")
    def _default_ports(self) -> Self:
        self.backend_port = _default_backend_port(self.frontend_port, self.backend_port)
        return self


class OutboundNatRuleProperties(WireModel):
    protocol: LbProtocol
    frontend_ip_configurations: list[FrontendRef] = Field(
        alias="frontendIPConfigurations", min_length=1
    )
    backend_address_pool: BackendPoolRef = Field(alias="backendAddressPool")
