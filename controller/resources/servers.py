"""servers (hosts) and their physical networkInterfaces ([MS-NCNBI] servers; reference 5.6).

A server is a hypervisor or container host. ``connections`` say how to reach it and with which
credential; its ``networkInterfaces`` name the provider (HNV PA) logical subnets the host is
attached to. Tenant NICs placed on the host are listed in ``virtualNetworkInterfaces``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated

from pydantic import AfterValidator, Field

from controller.core.kinds import BackRef, Kind
from controller.core.scalars import WireBool
from controller.core.shape import Shape, default
from controller.core.tree import Node
from controller.core.values import Port, parse_address
from controller.core.wire import WireModel
from controller.errors import InvalidInput
from controller.resources.credentials import CredentialType
from controller.resources.refs import CredentialRef, LogicalSubnetRef

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
    # An all-numeric last label is no host name (RFC 3696 2): "10.0.0.256" is a mistyped IP.
    if not _HOSTNAME.fullmatch(text) or text.rstrip(".").rsplit(".", 1)[-1].isdigit():
        raise ValueError(f"'{value}' is neither an IP address nor a host name")
    return text


ManagementAddress = Annotated[str, AfterValidator(_canonical_management_address)]


class Connection(WireModel):
    management_addresses: list[ManagementAddress] = Field(alias="managementAddresses", min_length=1)
    credential: CredentialRef
    credential_type: CredentialType | None = Field(default=None, alias="credentialType")
    port: Port | None = None


class ServerProperties(WireModel):
    # Required ([MS-NCNBI] servers): a host the controller cannot reach is of no use.
    connections: list[Connection] = Field(min_length=1)
    certificate: str | None = Field(default=None, max_length=65536)


class ServerNetworkInterfaceProperties(WireModel):
    is_bmc: WireBool = Field(default=False, alias="isBMC")
    logical_subnets: list[LogicalSubnetRef] = Field(default_factory=list, alias="logicalSubnets")


def _is_base64(text: str) -> bool:
    """Strict base64, as .NET's Convert.FromBase64String reads it back: whole 4-character
    groups, padding only to complete the last one (``QUJD=`` is refused)."""
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return base64.b64encode(decoded).decode("ascii") == text


def validate_server(node: Node) -> None:
    certificate = node.props(ServerProperties).certificate
    if certificate is not None and not _is_base64(certificate):
        raise InvalidInput(
            f"server '{node.resource_id}': certificate must be base64-encoded DER",
            target=node.target("certificate"),
        )


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
    shape=Shape(default("isBMC", False), default("logicalSubnets", [])),
    parent=SERVERS,
    description="A physical NIC of a server and the provider logical subnets it attaches to.",
)

KINDS = (SERVERS, SERVER_NETWORK_INTERFACES)
