"""The security of the API in its OpenAPI document: the ways to authenticate (bearer token or
OIDC JWT, the token as a Basic password, a client certificate) and the refusals every
operation but the discovery can answer (401, 403, 429), added to the generated document."""

from __future__ import annotations

from typing import Any

from controller.api.auth import PUBLIC_PATHS
from controller.api.docs import json_doc

SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (`sdnc token create`) or an OIDC JWT of the configured "
        "issuer (`SDNC_AUTH=token` / `oidc`).",
    },
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "An API token as the password, any user name (PowerShell's "
        "`Invoke-RestMethod -Credential`).",
    },
    "clientCertificate": {
        "type": "mutualTLS",
        "description": "A client certificate signed by the client CA, allowed by thumbprint "
        "or subject (`sdnc cert allow`, `SDNC_AUTH=x509`).",
    },
}
REFUSALS = {
    "401": "No credentials, or credentials that authenticate nobody (WWW-Authenticate says "
    "what is accepted)",
    "403": "The role does not allow this request",
    "429": "Too many failed authentications from this address (Retry-After)",
}


def document_security(schema: dict[str, Any]) -> None:
    """Add the schemes and, to every operation that needs credentials, the refusals."""
    schema.setdefault("components", {})["securitySchemes"] = SCHEMES
    schema["security"] = [{name: []} for name in SCHEMES]
    for path, operations in schema.get("paths", {}).items():
        public = path in PUBLIC_PATHS
        for operation in operations.values():
            if public:
                operation["security"] = []
                continue
            responses = operation.setdefault("responses", {})
            for status, reason in REFUSALS.items():
                responses.setdefault(status, json_doc("Error", reason))
