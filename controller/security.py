"""The northbound API's security, wired from the settings (part of the composition root, next
to ``app.py``): the audit log and its middleware, the authentication middleware with its token
and certificate store, the OIDC verifier and its issuer client, the failed-login throttle, and
CORS. ``install`` adds what runs inside the NBI middleware (so refusals get request ids and
see canonical paths), ``install_cors`` what runs in front of it."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import httpx
from fastapi import FastAPI

from controller.api.audit import WriteAuditMiddleware, audit_router, denial_sink
from controller.api.auth import AuthMiddleware
from controller.api.cors import AuditedCors
from controller.api.oidc import JwksCache, OidcOptions, OidcVerifier
from controller.api.throttle import FailureThrottle
from controller.service.access import AccessService
from controller.service.audit import AuditLog
from controller.settings import Settings
from controller.store.database import Database


class Security:
    """What ``install`` added to an app: started and stopped with it."""

    def __init__(
        self,
        access: AccessService,
        audit: AuditLog,
        prune_interval: float,
        issuer_client: httpx.AsyncClient | None,
    ) -> None:
        self.access = access
        self.audit = audit
        self.prune_interval = prune_interval
        self.issuer_client = issuer_client
        self._pruning: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._pruning = asyncio.create_task(
            self.audit.prune_every(self.prune_interval), name="audit-prune"
        )

    async def aclose(self) -> None:
        if self._pruning is not None:
            self._pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruning
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
    issuer_client: httpx.AsyncClient | None = None,
) -> Security:
    """Add the write audit and authentication middlewares to ``app`` (call it before the outer
    middlewares) and the audit log's route. ``issuer_client`` is how the OIDC issuer is
    reached (tests give one of their own)."""
    modes = settings.auth_modes()
    access = AccessService(database)
    audit = AuditLog(database, retention=timedelta(days=settings.audit_retention_days))
    verifier = None
    if "oidc" in modes:
        issuer_client = issuer_client or httpx.AsyncClient()
        options = oidc_options(settings)
        verifier = OidcVerifier(options, JwksCache(options, issuer_client))
    app.add_middleware(WriteAuditMiddleware, audit=audit)
    app.add_middleware(
        AuthMiddleware,
        modes=modes,
        access=access,
        throttle=FailureThrottle(settings.auth_failure_limit, settings.auth_failure_window),
        oidc=verifier,
        on_denied=denial_sink(audit),
    )
    app.include_router(audit_router(audit))
    app.state.access = access
    app.state.audit = audit
    client = issuer_client if verifier is not None else None
    return Security(access, audit, settings.audit_prune_interval, client)


def install_cors(app: FastAPI, settings: Settings, security: Security) -> None:
    """CORS in front of everything (preflights carry no credentials), if origins are listed."""
    origins = settings.cors_origin_list()
    if origins:
        app.add_middleware(AuditedCors, origins=origins, audit=security.audit)
