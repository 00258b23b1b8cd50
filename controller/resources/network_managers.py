"""The two fabric-wide singletons: ``virtualNetworkManager/configuration`` and
``virtualSwitchManager/configuration`` ([MS-NCNBI]; reference 5.4, 5.5).

Both exist from the start (the controller seeds them with defaults) and cannot be deleted; a
PUT replaces their settings.
"""

from __future__ import annotations

from pydantic import Field

from controller.core.kinds import Kind
from controller.core.scalars import WireBool
from controller.core.shape import Shape, default
from controller.core.tree import Node
from controller.core.values import Bandwidth, Percent
from controller.core.wire import WireEnum, WireModel
from controller.errors import InvalidInput


class VirtualizationProtocol(WireEnum):
    VXLAN = "Vxlan"
    NVGRE = "NvGRE"


class VirtualNetworkManagerProperties(WireModel):
    network_virtualization_protocol: VirtualizationProtocol = Field(
        default=VirtualizationProtocol.VXLAN, alias="networkVirtualizationProtocol"
    )


class ReservationMode(WireEnum):
    ABSOLUTE = "Absolute"
    WEIGHT = "Weight"


class SwitchQosSettings(WireModel):
    reservation_mode: ReservationMode | None = Field(default=None, alias="reservationMode")
    enable_software_reservations: WireBool | None = Field(
        default=None, alias="enableSoftwareReservations"
    )
    enable_hardware_limits: WireBool | None = Field(default=None, alias="enableHardwareLimits")
    enable_hardware_reservations: WireBool | None = Field(
        default=None, alias="enableHardwareReservations"
    )
    link_speed_percentage: Percent | None = Field(default=None, alias="linkSpeedPercentage")
    default_reservation: Bandwidth | None = Field(default=None, alias="defaultReservation")


class VirtualSwitchManagerProperties(WireModel):
    qos_settings: SwitchQosSettings = Field(default_factory=SwitchQosSettings, alias="qosSettings")


def validate_switch_manager(node: Node) -> None:
    qos = node.props(VirtualSwitchManagerProperties).qos_settings
    if qos.enable_hardware_reservations and qos.reservation_mode is ReservationMode.WEIGHT:
        raise InvalidInput(
            "hardware reservations need reservationMode Absolute",
            target=node.target("qosSettings.reservationMode"),
        )


VIRTUAL_NETWORK_MANAGER = Kind(
    name="virtualNetworkManager",
    title="VirtualNetworkManager",
    properties=VirtualNetworkManagerProperties,
    shape=Shape(default("networkVirtualizationProtocol", "Vxlan")),
    singleton_id="configuration",
    description="Fabric-wide settings of network virtualization (encapsulation protocol).",
)

VIRTUAL_SWITCH_MANAGER = Kind(
    name="virtualSwitchManager",
    title="VirtualSwitchManager",
    properties=VirtualSwitchManagerProperties,
    shape=Shape(default("qosSettings", {})),
    singleton_id="configuration",
    validate=validate_switch_manager,
    description="Fabric-wide virtual switch settings (QoS reservation mode and offloads).",
)

KINDS = (VIRTUAL_NETWORK_MANAGER, VIRTUAL_SWITCH_MANAGER)
