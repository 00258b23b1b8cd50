"""The application factory: wires settings, database, service and HTTP layer together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from controller import __version__
from controller.api import connectivity, diagnostics, docs, hints
from controller.api.middleware import NbiMiddleware
from controller.api.responses import error_response, json_response
from controller.api.routes import ApiOptions, RouteBuilder, WaitApplied, discovery
from controller.errors import ControllerError, InvalidInput, MethodNotAllowed, NotFound
from controller.ops import routes as ops
from controller.ops.health import known_migrations
from controller.policy.trace import CompiledPolicy, compiled_policy
from controller.resources import REGISTRY
from controller.service.allocation import AllocationSettings, Allocator
from controller.service.connectivity import ConnectivityChecks, PolicyReader
from controller.service.resources import ResourceService
from controller.service.slb_state import HealthReader, SlbDiagnostics, stored_health
from controller.settings import Settings
from controller.southbound.runtime import Southbound, SouthboundOptions
from controller.store.database import Database, Timeouts

DESCRIPTION = """\
Northbound REST API compatible with the Microsoft Network Controller ([MS-NCNBI]): resources
live under `/networking/v1` (and `v2`..`v5`), bodies use the NC envelope (`resourceId`,
`resourceRef`, `instanceId`, `etag`, `properties`), errors use
`{"error": {"code", "message", "target", "details"}}`.
"""


# Fixed path segments of routes that are no resource (matched case-insensitively).
WORDS = (*diagnostics.PATH_WORDS, *connectivity.PATH_WORDS)


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    dip_health: HealthReader | None = None,
) -> FastAPI:
    """``dip_health`` reads the DIP health for the slbState diagnostics (by default what the
    hosts reported, as stored)."""
    owns_database = database is None
    db = database or Database(
        settings.resolved_database_url(),
        pool_size=settings.database_pool_size,
        timeouts=database_timeouts(settings),
    )
    allocator = Allocator(AllocationSettings(settings.vsid_min, settings.vsid_max))
    southbound = Southbound(
        db,
        SouthboundOptions(
            poll_interval=settings.change_poll_interval,
            bookmark_interval=settings.bookmark_interval,
        ),
    )
    service = ResourceService(db, REGISTRY, allocator=allocator, on_commit=southbound.on_commit)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.ensure_singletons()
        await southbound.start()
        yield
        await southbound.stop()
        if owns_database:
            await db.dispose()

    app = FastAPI(
        title="SDN controller northbound API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.southbound = southbound
    app.add_middleware(
        NbiMiddleware,
        registry=REGISTRY,
        max_body_bytes=settings.max_body_bytes,
        words=WORDS,
    )
    _add_error_handlers(app)
    app.add_api_route(
        "/networking/discovery",
        _discovery,
        methods=["GET"],
        operation_id="discovery_get",
        tags=["discovery"],
        summary="Which REST versions this controller serves",
        openapi_extra={"responses": docs.discovery_responses()},
    )
    metrics = ops.install(
        app,
        database=db,
        southbound=southbound,
        registry=REGISTRY,
        words=WORDS,
        migrations=known_migrations(),
    )
    options = ApiOptions(max_json_depth=settings.max_json_depth)
    waiter = metrics.timed_waiter(_waiter(southbound))
    builder = RouteBuilder(service, options, wait_applied=waiter)
    app.include_router(builder.router(REGISTRY))
    slb_state = SlbDiagnostics(db, health=dip_health or stored_health(db))
    app.include_router(
        diagnostics.diagnostics_router(slb_state, max_json_depth=settings.max_json_depth)
    )
    checks = ConnectivityChecks(db, REGISTRY, _compiled_policy(southbound))
    app.include_router(
        connectivity.connectivity_router(checks, max_json_depth=settings.max_json_depth)
    )
    app.include_router(southbound.router())
    _document(app)
    return app


def database_timeouts(settings: Settings) -> Timeouts:
    return Timeouts(total=settings.database_timeout, connect=settings.database_connect_timeout)


def _compiled_policy(southbound: Southbound) -> PolicyReader:
    """The replica's compiled policy for the connectivity check, once it holds everything
    committed when the check arrived."""

    async def read() -> tuple[int, CompiledPolicy] | None:
        revision = await southbound.caught_up(southbound.options.revision_wait)
        if revision is None:
            return None
        compiler = southbound.compiler
        return revision, compiled_policy(compiler.objects, compiler.snapshot)

    return read


def _waiter(southbound: Southbound) -> WaitApplied:
    async def wait_applied(revision: int, within: float) -> bool:
        # Acks reach the database in batches: the wait writes those it saw before it
        # returns, so that the response shows them.
        outcome = await southbound.wait_applied(revision, within)
        return outcome.applied

    return wait_applied


async def _discovery() -> Response:
    return json_response(discovery())


def _add_error_handlers(app: FastAPI) -> None:
    async def controller_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ControllerError)
        response = error_response(exc)
        if isinstance(exc, MethodNotAllowed):
            allowed = hints.allowed_methods(app.router.routes, request.scope)
            response.headers["Allow"] = ", ".join(allowed)
        return response

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error: ControllerError
        path = request.scope["path"]
        if exc.status_code == 404:
            error = NotFound(hints.path_hint(REGISTRY, path, WORDS))
        elif exc.status_code == 405:
            allowed = hints.allowed_methods(app.router.routes, request.scope)
            error = MethodNotAllowed(
                f"{request.method} is not supported on this URI; it answers {', '.join(allowed)}"
            )
            response = error_response(error)
            response.headers["Allow"] = ", ".join(allowed)
            return response
        else:
            error = ControllerError(str(exc.detail))
            error.status = exc.status_code
        return error_response(error)

    async def validation_error(_: Request, exc: Exception) -> Response:
        return error_response(InvalidInput(f"the request is invalid: {exc}"))

    app.add_exception_handler(ControllerError, controller_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _document(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                docs.components(REGISTRY, (*diagnostics.DOC_MODELS, *connectivity.DOC_MODELS))
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
