"""JSON responses in the NC wire format: the resource envelope and the error envelope."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from controller.errors import ControllerError
from controller.service.views import ResourceView

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


def resource_response(view: ResourceView, status_code: int = 200) -> Response:
    return json_response(render(view), status_code, headers={"ETag": view.etag})


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
