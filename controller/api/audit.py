"""The audit log's northbound side: the middleware recording every write, the sink recording
every denial, and ``GET /admin/v1/auditEvents`` (admin only, as every ``/admin`` path).

Writes are recorded with the aggregate's etag before and after. A write the resource engine
commits is recorded in its transaction, with the etag it locked and the one it wrote; any other
once answered, with the etag read then (a failed write changed nothing) and the answer's
``ETag``. The request id is the ``x-ms-request-id`` the client got.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from pydantic import BeforeValidator
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.api.auth import Denial, DenialSink, principal_of
from controller.api.docs import json_doc
from controller.api.responses import json_response
from controller.core.roles import READ_METHODS
from controller.errors import ControllerError
from controller.service.audit import AUDITED_WRITE, AuditedWrite, AuditLog, AuditQuery, AuditRow

log = logging.getLogger(__name__)
# The scope key under which the NBI middleware leaves the request id it answers with.
REQUEST_ID = "sdnc.request_id"
EVENTS_PATH = "/admin/v1/auditEvents"
MAX_PAGE = 1000
UNAUDITED = READ_METHODS | {"OPTIONS"}


def _source(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def denial_row(audit: AuditLog, scope: Scope, status: int, outcome: str) -> AuditRow:
    principal = principal_of(scope)
    return AuditRow(
        at=audit.now(),
        principal=principal.name if principal else None,
        auth_method=principal.method if principal else None,
        source=_source(scope),
        method=scope.get("method", "?"),
        path=scope.get("path", "?"),
        status=status,
        request_id=scope.get(REQUEST_ID),
        outcome=outcome,
    )


def denial_sink(audit: AuditLog) -> DenialSink:
    async def record(denial: Denial) -> None:
        row = denial_row(audit, denial.scope, denial.error.status, denial.error.code)
        if denial.principal is not None:  # known, but not allowed
            row = replace(row, principal=denial.principal.name, auth_method=denial.principal.method)
        await audit.record(row)

    return record


class WriteAuditMiddleware:
    """Records every request that is not a read (inside authentication: only authorized
    requests get here; the refused ones the denial sink records). A write the resource engine
    commits is recorded in its own transaction (``AUDITED_WRITE``, service/audit.py); any
    other (refused, failed, or not the engine's) once answered, here."""

    def __init__(self, app: ASGIApp, *, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in UNAUDITED:
            await self.app(scope, receive, send)
            return
        audited = AuditedWrite(self._row(scope))
        answer: dict[str, Any] = {"status": None, "etag": None}

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"etag":
                        answer["etag"] = value.decode("latin-1")
            await send(message)

        token = AUDITED_WRITE.set(audited)
        try:
            await self.app(scope, receive, watched)
        finally:
            AUDITED_WRITE.reset(token)
            # Unanswered: the client left (or was dropped) before its request was in, so
            # nothing was attempted. Recording it would let slow clients make database work.
            if not audited.recorded and answer["status"] is not None:
                before = await self._etag_now(scope["path"])
                row = audited.completed(answer["status"], before, answer["etag"])
                await self.audit.record(replace(row, at=self.audit.now()))

    def _row(self, scope: Scope) -> AuditRow:
        principal = principal_of(scope)
        return AuditRow(
            at=self.audit.now(),
            principal=principal.name if principal else None,
            auth_method=principal.method if principal else None,
            source=_source(scope),
            method=scope["method"],
            path=scope["path"],
            status=0,
            request_id=scope.get(REQUEST_ID),
        )

    async def _etag_now(self, path: str) -> str | None:
        """The aggregate's etag after a write the engine did not commit: nothing changed it,
        so it is the one before (a concurrent writer's aside)."""
        if not path.lower().startswith("/networking/"):
            return None
        try:
            return await self.audit.etag_before(path)
        except ControllerError as exc:
            log.warning("the etag of %s for its audit event could not be read: %s", path, exc)
            return None


_TEXT = {"type": ["string", "null"]}
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "time", "method", "path", "status"],
    "properties": {
        "id": {"type": "string"},
        "time": {"type": "string", "format": "date-time"},
        "principal": {**_TEXT, "description": "token:NAME, subject:DN, oidc:NAME, local:USER"},
        "authentication": {**_TEXT, "description": "token, x509, oidc, none or cli"},
        "source": {**_TEXT, "description": "The client's address"},
        "method": {"type": "string"},
        "path": {"type": "string"},
        "status": {"type": "integer"},
        "etagBefore": _TEXT,
        "etagAfter": _TEXT,
        "requestId": {**_TEXT, "description": "The x-ms-request-id the client was answered"},
        "outcome": {**_TEXT, "description": "The error code of a denial, or the change made"},
    },
}
PAGE_DOC: dict[str, Any] = {
    "description": "A page of audit events, newest first",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["value"],
                "properties": {
                    "value": {"type": "array", "items": EVENT_SCHEMA},
                    "nextLink": {"type": "string", "description": "The next page"},
                },
            }
        }
    },
}
BAD_QUERY = "A filter is not valid (a time that is not ISO 8601, a page size out of range)"


def _not_a_number(value: object) -> object:
    # pydantic reads "0.5" as seconds since 1970; the document promises ISO 8601 times only.
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        raise ValueError("a time is ISO 8601 (2026-12-05T08:00:00Z), not a number")
    return value


_NUMBER = re.compile(r"[-+]?[0-9.eE+-]*")
Time = Annotated[datetime, BeforeValidator(_not_a_number)]


def render_event(event_id: int, row: AuditRow) -> dict[str, Any]:
    return {
        "id": str(event_id),
        "time": row.at.isoformat(),
        "principal": row.principal,
        "authentication": row.auth_method,
        "source": row.source,
        "method": row.method,
        "path": row.path,
        "status": row.status,
        "etagBefore": row.etag_before,
        "etagAfter": row.etag_after,
        "requestId": row.request_id,
        "outcome": row.outcome,
    }


def audit_router(audit: AuditLog) -> APIRouter:
    router = APIRouter()

    async def list_events(
        since: Annotated[Time | None, Query(alias="from")] = None,
        until: Annotated[Time | None, Query(alias="to")] = None,
        principal: Annotated[str | None, Query(max_length=512)] = None,
        path: Annotated[str | None, Query(max_length=2048)] = None,
        top: Annotated[int, Query(alias="$top", ge=1, le=MAX_PAGE)] = 100,
        skip_token: Annotated[int | None, Query(alias="$skipToken", ge=1)] = None,
    ) -> Response:
        query = AuditQuery(since, until, principal, path, skip_token, top)
        found = await audit.events(query)
        body: dict[str, Any] = {"value": [render_event(i, row) for i, row in found]}
        if len(found) == top:
            body["nextLink"] = _next_link(query, found[-1][0])
        return json_response(body)

    router.add_api_route(
        EVENTS_PATH,
        list_events,
        methods=["GET"],
        tags=["admin"],
        operation_id="audit_events_list",
        summary="The audit log, newest first: writes, denied requests, credential changes",
        description=(
            "Admin only. Filters: `from`/`to` (ISO 8601 times), `principal` (exact), `path` "
            "(that path and below it, any casing). Pages of `$top` events (at most 1000); "
            "`nextLink` fetches the next one."
        ),
        openapi_extra={"responses": {"200": PAGE_DOC, "400": json_doc("Error", BAD_QUERY)}},
    )
    return router


def _next_link(query: AuditQuery, last_id: int) -> str:
    params: dict[str, str] = {"$top": str(query.limit), "$skipToken": str(last_id)}
    if query.since is not None:
        params["from"] = query.since.isoformat()
    if query.until is not None:
        params["to"] = query.until.isoformat()
    if query.principal is not None:
        params["principal"] = query.principal
    if query.path is not None:
        params["path"] = query.path
    return f"{EVENTS_PATH}?{urlencode(params)}"
