"""The northbound API's security, wired from the settings (part of the composition root, next
to ``app.py``): the authentication middleware with its token and certificate store, the OIDC
verifier and its issuer client, and the failed-login throttle."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from controller.api.auth import AuthMiddleware, DenialSink
from controller.api.oidc import JwksCache, OidcOptions, OidcVerifier
from controller.api.throttle import FailureThrottle
from controller.service.access import AccessService
from controller.settings import Settings
from controller.store.database import Database


class Security:
    """What ``install`` added to an app, and what must be closed with it."""

    def __init__(self, access: AccessService, issuer_client: httpx.AsyncClient | None) -> None:
        self.access = access
        self.issuer_client = issuer_client

    async def aclose(self) -> None:
        if self.issuer_client is not None:
            await self.issuer_client.aclose()


def oidc_options(settings: Settings) -> OidcOptions:
    algorithms = tuple(a.strip() for a in settings.oidc_algorithms.split(",") if a.strip())
    return OidcOptions(
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        role_claim=settings.oidc_role_claim,
        algorithms=algorithms,
        jwks_url=settings.oidc_jwks_url or None,
    )


def install(
    app: FastAPI,
    settings: Settings,
    database: Database,
    *,
    on_denied: DenialSink | None = None,
    issuer_client: httpx.AsyncClient | None = None,
) -> Security:
    """Add the authentication middleware to ``app`` (call it before the outer middlewares).
    ``issuer_client`` is how the OIDC issuer is reached (tests give one trusting their CA)."""
    modes = settings.auth_modes()
    access = AccessService(database)
    verifier = None
    if "oidc" in modes:
        issuer_client = issuer_client or httpx.AsyncClient()
        options = oidc_options(settings)
        verifier = OidcVerifier(options, JwksCache(options, issuer_client))
    extra = {} if on_denied is None else {"on_denied": on_denied}
    app.add_middleware(
        AuthMiddleware,
        modes=modes,
        access=access,
        throttle=FailureThrottle(settings.auth_failure_limit, settings.auth_failure_window),
        oidc=verifier,
        **extra,
    )
    app.state.access = access
    return Security(access, issuer_client if verifier is not None else None)
