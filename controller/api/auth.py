"""Authentication and authorization of northbound requests (an ASGI middleware).

Who a request comes from, by the modes the server runs with (``SDNC_AUTH``, combinable):

* ``token``: ``Authorization: Bearer sdnc_...``, or the token as the password of HTTP Basic
  with any user name (what ``Invoke-RestMethod -Credential`` sends after the challenge);
* ``oidc``: ``Authorization: Bearer`` with a JWT of the configured issuer (``oidc.py``);
* ``x509``: the client certificate the TLS handshake verified, allowed by thumbprint or
  subject (it counts only when the request carries no ``Authorization``: credentials the
  client sends are the ones it means);
* ``none``: everyone is an anonymous admin (``sdnc serve`` allows it on loopback only).

No credentials, or credentials that do not authenticate: 401 with ``WWW-Authenticate`` naming
what the server accepts. A role that does not allow the request: 403. Both are decided from
the method and the path alone, before routing, so neither tells whether a resource exists.
Bad credentials count against the client's address (``throttle.py``); past the limit it is
answered 429 before its credentials are even looked at. ``/networking/discovery`` (the API
versions served), ``/healthz`` and ``/readyz`` need no credentials, so clients, load balancers
and orchestrators can find and probe the API (``/metrics`` needs a reader); the agent
channel's WebSocket authenticates its agents itself.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from controller.api.oidc import OidcVerifier
from controller.api.responses import error_response
from controller.api.throttle import FailureThrottle
from controller.core.roles import Role, allows, needed_role
from controller.errors import ControllerError, Forbidden, TooManyFailedLogins, Unauthorized
from controller.service.access import TOKEN_PREFIX, AccessService, Principal
from controller.service.identities import client_certificate

log = logging.getLogger(__name__)
MODES = ("none", "token", "x509", "oidc")
# Discovery, liveness and readiness: what clients, load balancers and orchestrators probe
# before (or without) holding a credential. They tell nothing of any tenant's resources.
PUBLIC_PATHS = frozenset({"/networking/discovery", "/healthz", "/readyz"})
ANONYMOUS = Principal("anonymous", Role.ADMIN, "none")
REALM = "sdnc"


@dataclass(frozen=True)
class Denial:
    """A request refused by authentication or authorization, for the audit log."""

    scope: Scope
    principal: Principal | None
    error: ControllerError


DenialSink = Callable[[Denial], Awaitable[None]]


async def _ignore(_: Denial) -> None:
    return None


class _BadCredentials(Exception):
    """Credentials were presented and authenticate nobody."""


def principal_of(scope: Scope) -> Principal | None:
    """Who the request of ``scope`` comes from, as the middleware found it."""
    found = scope.get("state", {}).get("principal")
    return found if isinstance(found, Principal) else None


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        modes: frozenset[str],
        access: AccessService,
        throttle: FailureThrottle,
        oidc: OidcVerifier | None = None,
        on_denied: DenialSink = _ignore,
    ) -> None:
        self.app = app
        self.modes = modes
        self.access = access
        self.throttle = throttle
        self.oidc = oidc
        self.on_denied = on_denied
        self.challenges = _challenges(modes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "none" in self.modes:
            scope.setdefault("state", {})["principal"] = ANONYMOUS
            await self.app(scope, receive, send)
            return
        if scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            refusal, principal = await self._check(scope)
        except ControllerError as exc:
            # Credentials could not be looked up (the database did not answer in time): the
            # request is answered as any would be then (503), and counts as no failure.
            await self._refuse(exc, scope, receive, send)
            return
        if refusal is not None:
            await self.on_denied(Denial(scope, principal, refusal))
            await self._refuse(refusal, scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _check(self, scope: Scope) -> tuple[ControllerError | None, Principal | None]:
        source = _source(scope)
        wait = self.throttle.retry_after(source)
        if wait is not None:
            return TooManyFailedLogins(
                "too many failed authentications from this address; try again later",
                retry_after=wait,
            ), None
        try:
            principal = await self._identify(scope)
        except _BadCredentials:
            self.throttle.failed(source)
            log.info("refused bad credentials from %s", source)
            return Unauthorized("the credentials presented are not valid"), None
        if principal is None:
            return Unauthorized("this request needs credentials"), None
        needed = needed_role(scope["method"], scope["path"])
        if not allows(principal.role, needed):
            return Forbidden(
                f"the role {principal.role.value} does not allow this request "
                f"(it needs {needed.value})"
            ), principal
        return None, principal

    async def _identify(self, scope: Scope) -> Principal | None:
        header = _header(scope, b"authorization")
        if header is not None:
            principal = await self._from_header(header)
            if principal is None:
                raise _BadCredentials
            return principal
        if "x509" in self.modes:
            der = client_certificate(scope)
            if der is not None:
                principal = await self.access.certificate_principal(der)
                if principal is None:
                    raise _BadCredentials
                return principal
        return None

    async def _from_header(self, header: str) -> Principal | None:
        scheme, _, credentials = header.strip().partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        if scheme == "bearer":
            if "token" in self.modes and credentials.startswith(TOKEN_PREFIX):
                return await self.access.token_principal(credentials)
            if self.oidc is not None:
                return await self.oidc.principal(credentials)
            return None
        if scheme == "basic" and "token" in self.modes:
            password = _basic_password(credentials)
            return None if password is None else await self.access.token_principal(password)
        return None

    async def _refuse(
        self, error: ControllerError, scope: Scope, receive: Receive, send: Send
    ) -> None:
        response = error_response(error)
        if isinstance(error, Unauthorized):
            for challenge in self.challenges:
                response.headers.append("WWW-Authenticate", challenge)
        await response(scope, receive, send)


def _challenges(modes: frozenset[str]) -> list[str]:
    challenges = []
    if "token" in modes or "oidc" in modes:
        challenges.append(f'Bearer realm="{REALM}"')
    if "token" in modes:
        challenges.append(f'Basic realm="{REALM}", charset="UTF-8"')
    if not challenges:  # x509 alone: no HTTP scheme carries a certificate; name it anyway
        challenges.append(f'ClientCertificate realm="{REALM}"')
    return challenges


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _basic_password(credentials: str) -> str | None:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, colon, password = decoded.partition(":")
    return password if colon else None


def _source(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
