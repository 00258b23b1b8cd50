"""servers (hosts) and their physical networkInterfaces ([MS-NCNBI] servers; reference 5.6).

A server is a hypervisor or container host. ``connections`` say how to reach it and with which
credential; its ``networkInterfaces`` name the provider (HNV PA) logical subnets the host is
attached to. Tenant NICs placed on the host are listed in ``virtualNetworkInterfaces``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field

from controller.core.kinds import BackRef, Kind
from controller.core.refs import ResourceRef
from controller.core.tree import Node
from controller.core.values import Port, parse_address
from controller.core.wire import WireModel
from controller.errors import InvalidInput
from controller.resources.credentials import CredentialType

_HOSTNAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def _canonical_management_address(value: str) -> str:
    text = value.strip()
    try:
        return str(parse_address(text))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(text):
        raise ValueError(f"'{value}' is neither an IP address nor a host name")
    return text


ManagementAddress = Annotated[str, AfterValidator(_canonical_management_address)]


class CredentialRef(ResourceRef):
    targets: ClassVar[tuple[str, ...]] = ("credentials",)


class LogicalSubnetRef(ResourceRef):
    targets: ClassVar[tuple[str, ...]] = ("logicalNetworks/subnets",)


class Connection(WireModel):
    management_addresses: list[ManagementAddress] = Field(alias="managementAddresses", min_length=1)
    credential: CredentialRef
    credential_type: CredentialType | None = Field(default=None, alias="credentialType")
    port: Port | None = None


class ServerProperties(WireModel):
    connections: list[Connection] = Field(default_factory=list)
    certificate: str | None = Field(default=None, max_length=65536)


class ServerNetworkInterfaceProperties(WireModel):
    is_bmc: bool = Field(default=False, alias="isBMC")
    logical_subnets: list[LogicalSubnetRef] = Field(default_factory=list, alias="logicalSubnets")


def validate_server(node: Node) -> None:
    certificate = node.props(ServerProperties).certificate
    if certificate is not None:
        try:
            base64.b64decode(certificate, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                f"server '{node.resource_id}': certificate must be base64-encoded DER",
                target=node.target("certificate"),
            ) from None


SERVERS = Kind(
    name="servers",
    title="Server",
    properties=ServerProperties,
    validate=validate_server,
    backrefs=(BackRef("virtualNetworkInterfaces", ("networkInterfaces",), via=("server",)),),
    description="A host whose virtual switch the controller programs.",
)

SERVER_NETWORK_INTERFACES = Kind(
    name="networkInterfaces",
    title="ServerNetworkInterface",
    properties=ServerNetworkInterfaceProperties,
    parent=SERVERS,
    description="A physical NIC of a server and the provider logical subnets it attaches to.",
)

KINDS = (SERVERS, SERVER_NETWORK_INTERFACES)
