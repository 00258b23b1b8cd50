"""JSON responses in the NC wire format: the resource envelope and the error envelope."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from controller.errors import ControllerError
from controller.service.heavy import HEAVY_ROWS, off_loop
from controller.service.reading import Page
from controller.service.views import ResourceView

log = logging.getLogger(__name__)

JSON_MEDIA_TYPE = "application/json; charset=utf-8"


def json_response(
    content: object, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(content), status_code=status_code, media_type=JSON_MEDIA_TYPE, headers=headers
    )


def render(view: ResourceView) -> dict[str, Any]:
    """A resource with its children embedded, in canonical camelCase."""
    properties: dict[str, Any] = {"provisioningState": view.provisioning_state}
    if view.configuration_state is not None:
        properties["configurationState"] = view.configuration_state
    # The stored document with the members NC always renders filled in (never stored).
    properties.update(view.kind.shape.render(view.properties))
    properties.update(view.computed)
    for name, children in view.children.items():
        properties[name] = [render(child) for child in children]
    single = {backref.member for backref in view.kind.backrefs if backref.single}
    for member, refs in view.backrefs.items():
        if member not in single:
            properties[member] = [{"resourceRef": ref} for ref in refs]
        elif refs:
            properties[member] = {"resourceRef": refs[0]}
    return {
        "resourceRef": view.resource_ref,
        "resourceId": view.resource_id,
        "etag": view.etag,
        "instanceId": str(view.instance_id),
        "tags": view.tags or {},
        "resourceMetadata": view.metadata or {},
        "properties": properties,
    }


async def collection_response(pages: AsyncGenerator[Page, None]) -> Response:
    """``{"value": [...], "nextLink": ""}`` of the members ``pages`` yields. A collection of one
    page is answered whole, with its length; a longer one is streamed as its pages are read,
    each rendered off the event loop, so neither the whole collection nor its rendering is
    ever in memory at once. Errors reading the first page are answered as errors; a page
    after the answer has started can only cut the answer short (the connection is closed
    without the chunked body's end, so no client takes it for the whole collection)."""
    first = await anext(pages)
    if first.last:
        await pages.aclose()
        return json_response({"value": [render(view) for view in first.views], "nextLink": ""})
    return StreamingResponse(_streamed(first, pages), media_type=JSON_MEDIA_TYPE)


class CollectionCutShort(RuntimeError):
    """A page of a collection being streamed could not be read."""


def _members(views: list[ResourceView]) -> bytes:
    """A page's members as they sit in the collection's array (without its brackets)."""
    return orjson.dumps([render(view) for view in views])[1:-1]


async def _streamed(first: Page, pages: AsyncGenerator[Page, None]) -> AsyncIterator[bytes]:
    yield b'{"value":[' + await off_loop(_members, first.views)
    try:
        async for page in pages:
            if page.views:
                yield b"," + await off_loop(_members, page.views)
    except ControllerError as exc:
        log.warning("a collection was cut short after its answer started: %s", exc.message)
        raise CollectionCutShort(exc.message) from exc
    yield b'],"nextLink":""}'


async def resource_response(view: ResourceView, status_code: int = 200) -> Response:
    """The resource with its ``ETag``; a big aggregate (a container host's NIC with a thousand
    ipConfigurations) is rendered off the event loop."""
    if _members_count(view) < HEAVY_ROWS:
        content = orjson.dumps(render(view))
    else:
        content = await off_loop(lambda: orjson.dumps(render(view)))
    return Response(content, status_code, {"ETag": view.etag}, media_type=JSON_MEDIA_TYPE)


def _members_count(view: ResourceView) -> int:
    return 1 + sum(_members_count(child) for kids in view.children.values() for child in kids)


def error_body(error: ControllerError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.target:
        body["target"] = error.target
    if error.details:
        body["details"] = [
            {"code": d.code, "message": d.message, **({"target": d.target} if d.target else {})}
            for d in error.details
        ]
    return {"error": body}


def error_response(error: ControllerError, headers: dict[str, str] | None = None) -> Response:
    if error.retry_after is not None:
        headers = {**(headers or {}), "Retry-After": str(error.retry_after)}
    return json_response(error_body(error), error.status, headers)
