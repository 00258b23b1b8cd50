"""HTTP routes of the NBI, generated from the resource registry.

For a top-level kind ``K``: ``GET /networking/{apiVersion}/K``, and GET/PUT/DELETE on
``/K/{resourceId}``; for a child kind the parent ids come first (``parentResourceId``,
``grandParentResourceId``, the names [MS-NCNBI] gives them). Singletons (``.../configuration``)
have GET and PUT only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from controller.api import docs
from controller.api.body import read_json
from controller.api.responses import collection_response, resource_response
from controller.core.kinds import Kind, Registry
from controller.core.paths import CollectionPath, ResourcePath
from controller.core.values import check_resource_id
from controller.errors import InvalidInput, NotFound, ServiceUnavailable
from controller.service.audit import delete_status, put_status
from controller.service.preconditions import Preconditions
from controller.service.resources import ResourceService
from controller.service.views import ResourceView

SUPPORTED_VERSIONS = ("v1", "v2", "v3", "v4", "v5")
CURRENT_VERSION = SUPPORTED_VERSIONS[-1]
_ID_PARAMS = ("grandParentResourceId", "parentResourceId", "resourceId")
Handler = Callable[[Request], Awaitable[Response]]
# Waits until the hosts a revision touched applied it; False on timeout.
WaitApplied = Callable[[int, float], Awaitable[bool]]
MAX_WAIT_SECONDS = 60.0
# The least time reading a resource back after a wait gets (one quick read; seconds).
READ_BACK_MINIMUM = 0.5
DEFAULT_WAIT_SECONDS = 10.0
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_VERSION = re.compile(r"v[0-9]{1,9}")
_METHODS = {"list": "GET", "get": "GET", "put": "PUT", "delete": "DELETE"}


@dataclass(frozen=True)
class ApiOptions:
    max_json_depth: int = 64


def chain(kind: Kind) -> list[Kind]:
    """The kinds from the top-level ancestor down to ``kind``."""
    return [*chain(kind.parent), kind] if kind.parent is not None else [kind]


def _id_params(count: int) -> Sequence[str]:
    return _ID_PARAMS[len(_ID_PARAMS) - count :]


def item_template(kind: Kind) -> str:
    kinds = chain(kind)
    params = _id_params(len(kinds))
    parts = [
        f"{k.name}/{k.singleton_id}" if k.singleton_id else f"{k.name}/{{{param}}}"
        for k, param in zip(kinds, params, strict=True)
    ]
    return "/networking/{apiVersion}/" + "/".join(parts)


def collection_template(kind: Kind) -> str:
    kinds = chain(kind)
    params = _id_params(len(kinds))[:-1]
    parents = [f"{k.name}/{{{p}}}" for k, p in zip(kinds[:-1], params, strict=True)]
    return "/networking/{apiVersion}/" + "/".join([*parents, kind.name])


def check_version(request: Request) -> None:
    """The URI's API version: malformed is a 400, not served a 404."""
    _check_version_text(request)
    _check_served(request)


def _check_served(request: Request) -> None:
    version = request.path_params.get("apiVersion", "")
    if version not in SUPPORTED_VERSIONS:
        raise NotFound(
            f"API version '{version}' is not served; use one of {', '.join(SUPPORTED_VERSIONS)}",
            target="apiVersion",
        )


def _path_id(request: Request, param: str) -> str:
    """A resource id of the URI: no id a PUT would refuse can name anything, so it is a 400
    on every method (before any database work), not a 404."""
    try:
        return check_resource_id(request.path_params[param])
    except ValueError as exc:
        raise InvalidInput(str(exc), target=param) from None


def _check_version_text(request: Request) -> None:
    version = request.path_params.get("apiVersion", "")
    if _VERSION.fullmatch(version) is None:
        raise InvalidInput(f"'{version}' is not an API version (v1, v2, ...)", target="apiVersion")


def resource_path(request: Request, kind: Kind) -> ResourcePath:
    # Malformed parts of the URI first (400), then whether the version is served (404).
    _check_version_text(request)
    kinds = chain(kind)
    steps: list[tuple[Kind, str]] = []
    for k, param in zip(kinds, _id_params(len(kinds)), strict=True):
        steps.append((k, k.singleton_id or _path_id(request, param)))
    _check_served(request)
    return ResourcePath(tuple(steps))


def collection_path(request: Request, kind: Kind) -> CollectionPath:
    _check_version_text(request)
    kinds = chain(kind)
    params = _id_params(len(kinds))[:-1]
    steps = tuple((k, _path_id(request, p)) for k, p in zip(kinds[:-1], params, strict=True))
    _check_served(request)
    return CollectionPath(kind, ResourcePath(steps) if steps else None)


class RouteBuilder:
    def __init__(
        self,
        service: ResourceService,
        options: ApiOptions,
        *,
        wait_applied: WaitApplied | None = None,
    ) -> None:
        self.service = service
        self.options = options
        self.wait_applied = wait_applied

    def router(self, registry: Registry) -> APIRouter:
        router = APIRouter()
        for kind in registry.kinds:
            self._add_kind(router, kind)
        return router

    def _add_kind(self, router: APIRouter, kind: Kind) -> None:
        handlers: dict[str, Handler] = {}
        if kind.singleton_id is None:
            handlers["list"] = self._list(kind)
        handlers["get"] = self._get(kind)
        handlers["put"] = self._put(kind)
        if kind.deletable:
            handlers["delete"] = self._delete(kind)
        for name, handler in handlers.items():
            summary, extra = docs.operation(kind, name)
            router.add_api_route(
                collection_template(kind) if name == "list" else item_template(kind),
                handler,
                methods=[_METHODS[name]],
                operation_id=f"{kind.key.replace('/', '_')}_{name}",
                tags=[chain(kind)[0].name],
                summary=summary,
                openapi_extra=extra,
                # DELETE answers no body: no JSON content type in the document either.
                response_class=Response if name == "delete" else JSONResponse,
            )

    def _list(self, kind: Kind) -> Handler:
        async def list_resources(request: Request) -> Response:
            return await collection_response(self.service.pages(collection_path(request, kind)))

        return list_resources

    def _get(self, kind: Kind) -> Handler:
        async def get_resource(request: Request) -> Response:
            return await resource_response(await self.service.get(resource_path(request, kind)))

        return get_resource

    def _put(self, kind: Kind) -> Handler:
        async def put_resource(request: Request) -> Response:
            path = resource_path(request, kind)
            body = await read_json(request, max_depth=self.options.max_json_depth)
            within = _wait_seconds(request)
            result = await self.service.put(path, body, _preconditions(request))
            status = put_status(result.created)
            if within is None or self.wait_applied is None:
                return await resource_response(result.view, status)
            deadline = time.monotonic() + within
            applied = await self.wait_applied(result.revision, within)
            view = await self._read_back(path, result.view, deadline)
            response = await resource_response(view, status)
            response.headers[APPLIED_HEADER] = "true" if applied else "false"
            return response

        return put_resource

    async def _read_back(
        self, path: ResourcePath, written: ResourceView, deadline: float
    ) -> ResourceView:
        """The resource as it is now, with what the hosts reported; as written when the
        database cannot show it by the end of the wait (the write is committed all the same)."""
        left = max(deadline - time.monotonic(), READ_BACK_MINIMUM)
        try:
            return await self.service.get(path, within=left)
        except ServiceUnavailable:
            return written

    def _delete(self, kind: Kind) -> Handler:
        async def delete_resource(request: Request) -> Response:
            path = resource_path(request, kind)
            within = _wait_seconds(request)
            result = await self.service.delete(path, _preconditions(request))
            response = Response(status_code=delete_status(result.deleted))
            if within is not None and self.wait_applied is not None and result.revision:
                applied = await self.wait_applied(result.revision, within)
                response.headers[APPLIED_HEADER] = "true" if applied else "false"
            return response

        return delete_resource


APPLIED_HEADER = "x-sdnc-applied"


def _wait_seconds(request: Request) -> float | None:
    """``?wait=applied[&timeout=S]``: how long to wait for the hosts; None: do not wait."""
    wait = request.query_params.get("wait")
    timeout = request.query_params.get("timeout")
    # Checked even without wait: a timeout that cannot be right is a client's mistake.
    seconds = _timeout_seconds(timeout) if timeout is not None else DEFAULT_WAIT_SECONDS
    if wait is None:
        return None
    if wait.lower() != "applied":
        raise InvalidInput("wait must be 'applied'", target="wait")
    return seconds


def _timeout_seconds(text: str) -> float:
    # A JSON number: float() alone would also take 'nan', 'inf' and '1_0'.
    if _NUMBER.fullmatch(text) is None:
        raise InvalidInput("timeout must be a number of seconds", target="timeout")
    seconds = float(text)
    if not 0 < seconds <= MAX_WAIT_SECONDS:
        raise InvalidInput(
            f"timeout must be above 0 and at most {MAX_WAIT_SECONDS:g} s", target="timeout"
        )
    return seconds


def _preconditions(request: Request) -> Preconditions:
    return Preconditions(
        if_match=request.headers.get("if-match"),
        if_none_match=request.headers.get("if-none-match"),
    )


def discovery() -> dict[str, Any]:
    return {
        "resourceRef": "/discovery",
        "properties": {
            "currentRestVersion": CURRENT_VERSION,
            "supportedRestVersions": list(SUPPORTED_VERSIONS),
        },
    }
