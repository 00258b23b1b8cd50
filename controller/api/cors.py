"""CORS for browser portals: an explicit allow-list of origins (``SDNC_CORS_ORIGINS``), with
credentials (a portal sends its OIDC bearer token), so never ``*``.

Starlette's middleware does the work. A preflight it refuses (an origin, method or header not
allowed) is answered 403 in the NC error envelope instead of its plain-text 400, and recorded
in the audit log as the denial it is. Preflights carry no credentials, so this middleware runs
in front of authentication.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from controller.api.audit import denial_row
from controller.api.responses import error_response
from controller.errors import Forbidden
from controller.service.audit import AuditLog

ALLOWED_METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE", "PATCH")
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "x-ms-client-request-id",
)
EXPOSED_HEADERS = ("ETag", "x-ms-request-id", "x-ms-client-request-id", "Retry-After")


class AuditedCors(CORSMiddleware):
    def __init__(self, app: ASGIApp, *, origins: Sequence[str], audit: AuditLog) -> None:
        super().__init__(
            app,
            allow_origins=list(origins),
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            allow_credentials=True,
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await super().__call__(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if "origin" not in headers or "access-control-request-method" not in headers:
            await super().__call__(scope, receive, send)
            return
        response = self.preflight_response(request_headers=headers)
        if response.status_code >= 400:
            reason = bytes(response.body).decode(errors="replace")
            await self.audit.record(denial_row(self.audit, scope, 403, f"CORS: {reason}"))
            response = _refusal(reason)
        await response(scope, receive, send)


def _refusal(reason: str) -> Response:
    return error_response(Forbidden(f"the CORS preflight is refused: {reason}"))
