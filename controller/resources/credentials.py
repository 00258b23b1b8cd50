"""credentials ([MS-NCNBI] credentials; reference 5.1).

Secrets (passwords, SNMP community strings) are write-only: they are stored apart from the
document and never returned. Certificate thumbprints and subject names are not secret and are
returned, since operators need to see which certificate a host must present.
"""

from __future__ import annotations

from pydantic import Field

from controller.core.kinds import Kind
from controller.core.refs import ResourceRef
from controller.core.shape import Shape, read_only
from controller.core.tree import Node
from controller.core.wire import WireEnum, WireModel
from controller.errors import InvalidInput


class CredentialType(WireEnum):
    USERNAME_PASSWORD = "UsernamePassword"
    X509_CERTIFICATE = "X509Certificate"
    X509_CERTIFICATE_SUBJECT_NAME = "X509CertificateSubjectName"
    SNMP_COMMUNITY_STRING = "SnmpCommunityString"


SECRET_TYPES = frozenset({CredentialType.USERNAME_PASSWORD, CredentialType.SNMP_COMMUNITY_STRING})


class CredentialProperties(WireModel):
    type: CredentialType
    user_name: str | None = Field(default=None, alias="userName", max_length=256)
    value: str | None = Field(default=None, max_length=16384)


def validate_credential(node: Node) -> None:
    props = node.props(CredentialProperties)
    if props.value == "":
        # Omit value to keep a stored secret; an empty one would silently replace it.
        raise InvalidInput(
            f"credential '{node.resource_id}': value must not be empty",
            target=node.target("value"),
        )
    kept_secret = props.type in SECRET_TYPES and bool((node.secret or {}).get("value"))
    if props.value is None and not kept_secret:
        raise InvalidInput(
            f"credential '{node.resource_id}' needs a value (the password, thumbprint, "
            "subject name or community string)",
            target=node.target("value"),
        )
    if props.type is CredentialType.USERNAME_PASSWORD and not props.user_name:
        raise InvalidInput(
            f"credential '{node.resource_id}' of type UsernamePassword needs a userName",
            target=node.target("userName"),
        )


def secret_members(node: Node) -> frozenset[str]:
    """Members kept out of the returned document for this credential."""
    props = node.props(CredentialProperties)
    return frozenset({"value"}) if props.type in SECRET_TYPES else frozenset()


CREDENTIALS = Kind(
    name="credentials",
    title="Credential",
    properties=CredentialProperties,
    shape=Shape(read_only("networks", [], list[ResourceRef])),
    validate=validate_credential,
    secret_members=secret_members,
    description="A secret or certificate identity used to reach hosts and devices.",
)

KINDS = (CREDENTIALS,)
