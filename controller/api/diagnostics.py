"""The diagnostics routes: ``PUT /diagnostics/slbState`` and
``GET /diagnostics/slbStateResults/{operationId}`` (NC's asynchronous pattern).

The PUT answers 201 with ``properties.operationId`` and ``properties.slbStateResult``
(the reference of the result; also in the ``Location`` header). The result carries
``properties.result``, one entry per VIP, and the same entries in NC's ``output`` layout
(``datagroups`` -> ``dataSections`` -> ``dataunits`` named by VIP), which the SDN diagnostics
scripts read.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from controller.api.body import read_json
from controller.api.docs import ResourceRefOut, errors, json_doc
from controller.api.responses import json_response
from controller.api.routes import SUPPORTED_VERSIONS, check_version
from controller.core.wire import fold_members
from controller.errors import InvalidInput
from controller.service.slb_state import SlbDiagnostics, SlbStateReport

# Path segments of these routes, matched case-insensitively like the resource types.
PATH_WORDS = ("diagnostics", "slbState", "slbStateResults")
STATE_PATH = "/networking/{apiVersion}/diagnostics/slbState"
RESULT_PATH = "/networking/{apiVersion}/diagnostics/slbStateResults/{operationId}"
Json = dict[str, Any]


class SlbStateOperationProperties(BaseModel):
    provisioningState: str = "Succeeded"
    operationId: str
    slbStateResult: ResourceRefOut


class SlbStateOperation(BaseModel):
    """An slbState operation: where its result is read."""

    resourceRef: str
    resourceId: str
    etag: str
    instanceId: str
    properties: SlbStateOperationProperties


class SlbStateResultProperties(BaseModel):
    provisioningState: str = "Succeeded"
    status: str = "Succeeded"
    operationId: str
    startTime: str
    expiryTime: str
    result: list[dict[str, Any]]
    output: dict[str, Any]


class SlbStateResult(BaseModel):
    """The software load balancer state: per VIP its frontend, rules and DIPs with health."""

    resourceRef: str
    resourceId: str
    etag: str
    instanceId: str
    properties: SlbStateResultProperties


DOC_MODELS: tuple[type[BaseModel], ...] = (SlbStateOperation, SlbStateResult)


def _parameters(*names: str) -> list[Json]:
    version = {"type": "string", "enum": list(SUPPORTED_VERSIONS)}
    return [
        {"name": "apiVersion", "in": "path", "required": True, "schema": version},
        *({"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names),
    ]


def _operation_body(stored_id: str) -> Json:
    return {
        "resourceRef": "/diagnostics/slbState",
        "resourceId": "slbState",
        "etag": f'W/"{stored_id}"',
        "instanceId": stored_id,
        "tags": {},
        "resourceMetadata": {},
        "properties": {
            "provisioningState": "Succeeded",
            "operationId": stored_id,
            "slbStateResult": {"resourceRef": f"/diagnostics/slbStateResults/{stored_id}"},
        },
    }


def _result_body(stored: SlbStateReport) -> Json:
    operation_id = str(stored.operation_id)
    vips = stored.vips
    units = [{"name": vip.get("vip") or "", "value": vip} for vip in vips]
    return {
        "resourceRef": f"/diagnostics/slbStateResults/{operation_id}",
        "resourceId": operation_id,
        "etag": f'W/"{operation_id}"',
        "instanceId": operation_id,
        "tags": {},
        "resourceMetadata": {},
        "properties": {
            "provisioningState": "Succeeded",
            "status": "Succeeded",
            "operationId": operation_id,
            "startTime": stored.created_at.isoformat(),
            "expiryTime": stored.expires_at.isoformat(),
            "result": vips,
            "output": {
                "datagroups": [
                    {"name": "Tenant", "dataSections": [{"name": "VIPs", "dataunits": units}]}
                ]
            },
        },
    }


def diagnostics_router(diagnostics: SlbDiagnostics, *, max_json_depth: int) -> APIRouter:
    router = APIRouter()

    async def put_slb_state(request: Request) -> Response:
        check_version(request)
        body = await read_json(request, max_depth=max_json_depth)
        assert isinstance(body, dict)
        properties = fold_members(body, {"properties": "properties"}).get("properties", {})
        if not isinstance(properties, dict):
            raise InvalidInput(
                "properties must be a JSON object", target="/diagnostics/slbState/properties"
            )
        operation = await diagnostics.run()
        stored_id = str(operation.operation_id)
        version = request.path_params["apiVersion"]
        location = f"/networking/{version}/diagnostics/slbStateResults/{stored_id}"
        headers = {"ETag": f'W/"{stored_id}"', "Location": location}
        return json_response(_operation_body(stored_id), 201, headers)

    async def get_slb_state_result(request: Request) -> Response:
        check_version(request)
        stored = await diagnostics.result(request.path_params["operationId"])
        body = _result_body(stored)
        return json_response(body, headers={"ETag": body["etag"]})

    router.add_api_route(
        STATE_PATH,
        put_slb_state,
        methods=["PUT"],
        operation_id="diagnostics_slbState_put",
        tags=["diagnostics"],
        summary="Take the software load balancer state (answers where its result is read)",
        openapi_extra={
            "parameters": _parameters(),
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "201": json_doc("SlbStateOperation", "Taken; read it at slbStateResult"),
                **errors(400, 404, 415),
            },
        },
    )
    router.add_api_route(
        RESULT_PATH,
        get_slb_state_result,
        methods=["GET"],
        operation_id="diagnostics_slbStateResults_get",
        tags=["diagnostics"],
        summary="Read the result of an slbState operation",
        openapi_extra={
            "parameters": _parameters("operationId"),
            "responses": {
                "200": json_doc("SlbStateResult", "The state, per VIP"),
                **errors(400, 404),
            },
        },
    )
    return router
