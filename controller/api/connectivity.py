"""The connectivity check routes (NC's asynchronous pattern, as ``diagnostics/slbState``):

``PUT /diagnostics/connectivityCheck``                     201, ``properties.operationId`` and
                                                           ``connectivityCheckResult``
``GET /diagnostics/connectivityCheckResults/{operationId}`` the result
``GET /diagnostics/connectivityCheckResults``               every unexpired result

The result's ``properties.result.status`` is ``Success`` or ``Failure``, with the hops the
packet takes and, on failure, the reason (``controller.service.connectivity``).
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
from controller.service.connectivity import ConnectivityChecks, ConnectivityReport

PATH_WORDS = ("connectivityCheck", "connectivityCheckResults")
CHECK_PATH = "/networking/{apiVersion}/diagnostics/connectivityCheck"
RESULTS_PATH = "/networking/{apiVersion}/diagnostics/connectivityCheckResults"
RESULT_PATH = RESULTS_PATH + "/{operationId}"
Json = dict[str, Any]


class ConnectivityCheckOperationProperties(BaseModel):
    provisioningState: str = "Succeeded"
    operationId: str
    connectivityCheckResult: ResourceRefOut


class ConnectivityCheckOperation(BaseModel):
    """A connectivity check: where its result is read."""

    resourceRef: str
    resourceId: str
    etag: str
    instanceId: str
    properties: ConnectivityCheckOperationProperties


class ConnectivityCheckVerdict(BaseModel):
    status: str  # Success | Failure
    reason: str | None = None
    hops: list[dict[str, Any]]


class ConnectivityCheckResultProperties(BaseModel):
    provisioningState: str = "Succeeded"
    status: str = "Succeeded"
    operationId: str
    startTime: str
    expiryTime: str
    senderIpAddress: str
    receiverIpAddress: str
    senderVirtualNetwork: ResourceRefOut
    receiverVirtualNetwork: ResourceRefOut
    protocol: str
    revision: int
    result: ConnectivityCheckVerdict


class ConnectivityCheckResult(BaseModel):
    """Whether the sender reaches the receiver, by which hops, and why not."""

    resourceRef: str
    resourceId: str
    etag: str
    instanceId: str
    properties: ConnectivityCheckResultProperties


class ConnectivityCheckResults(BaseModel):
    value: list[ConnectivityCheckResult]


DOC_MODELS: tuple[type[BaseModel], ...] = (
    ConnectivityCheckOperation,
    ConnectivityCheckResult,
    ConnectivityCheckResults,
)


def _parameters(*names: str) -> list[Json]:
    version = {"type": "string", "enum": list(SUPPORTED_VERSIONS)}
    return [
        {"name": "apiVersion", "in": "path", "required": True, "schema": version},
        *({"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names),
    ]


def _envelope(ref: str, operation_id: str, properties: Json) -> Json:
    return {
        "resourceRef": ref,
        "resourceId": ref.rpartition("/")[2],
        "etag": f'W/"{operation_id}"',
        "instanceId": operation_id,
        "tags": {},
        "resourceMetadata": {},
        "properties": properties,
    }


def _operation_body(operation_id: str) -> Json:
    result_ref = f"/diagnostics/connectivityCheckResults/{operation_id}"
    return _envelope(
        "/diagnostics/connectivityCheck",
        operation_id,
        {
            "provisioningState": "Succeeded",
            "operationId": operation_id,
            "connectivityCheckResult": {"resourceRef": result_ref},
        },
    )


def _result_body(report: ConnectivityReport) -> Json:
    operation_id = str(report.operation_id)
    return _envelope(
        f"/diagnostics/connectivityCheckResults/{operation_id}",
        operation_id,
        {
            "provisioningState": "Succeeded",
            "status": "Succeeded",
            "operationId": operation_id,
            "startTime": report.created_at.isoformat(),
            "expiryTime": report.expires_at.isoformat(),
            **report.result,
        },
    )


def connectivity_router(checks: ConnectivityChecks, *, max_json_depth: int) -> APIRouter:
    router = APIRouter()

    async def put_check(request: Request) -> Response:
        check_version(request)
        body = await read_json(request, max_depth=max_json_depth)
        assert isinstance(body, dict)
        properties = fold_members(body, {"properties": "properties"}).get("properties")
        if not isinstance(properties, dict):
            raise InvalidInput(
                "properties must be a JSON object naming the sender and the receiver",
                target="/diagnostics/connectivityCheck/properties",
            )
        report = await checks.run(properties)
        operation_id = str(report.operation_id)
        version = request.path_params["apiVersion"]
        location = f"/networking/{version}/diagnostics/connectivityCheckResults/{operation_id}"
        headers = {"ETag": f'W/"{operation_id}"', "Location": location}
        return json_response(_operation_body(operation_id), 201, headers)

    async def get_result(request: Request) -> Response:
        check_version(request)
        report = await checks.result(request.path_params["operationId"])
        body = _result_body(report)
        return json_response(body, headers={"ETag": body["etag"]})

    async def list_results(request: Request) -> Response:
        check_version(request)
        reports = await checks.results()
        return json_response({"value": [_result_body(report) for report in reports]})

    router.add_api_route(
        CHECK_PATH,
        put_check,
        methods=["PUT"],
        operation_id="diagnostics_connectivityCheck_put",
        tags=["diagnostics"],
        summary="Check whether one endpoint reaches another (answers where the result is read)",
        openapi_extra={
            "parameters": _parameters(),
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "201": json_doc("ConnectivityCheckOperation", "Checked; read it at the result"),
                **errors(400, 404, 415),
            },
        },
    )
    router.add_api_route(
        RESULT_PATH,
        get_result,
        methods=["GET"],
        operation_id="diagnostics_connectivityCheckResults_get",
        tags=["diagnostics"],
        summary="Read the result of a connectivity check",
        openapi_extra={
            "parameters": _parameters("operationId"),
            "responses": {
                "200": json_doc("ConnectivityCheckResult", "The verdict and the hops"),
                **errors(400, 404),
            },
        },
    )
    router.add_api_route(
        RESULTS_PATH,
        list_results,
        methods=["GET"],
        operation_id="diagnostics_connectivityCheckResults_list",
        tags=["diagnostics"],
        summary="Every connectivity check result that has not expired",
        openapi_extra={
            "parameters": _parameters(),
            "responses": {
                "200": json_doc("ConnectivityCheckResults", "The results, newest first"),
                **errors(400, 404),
            },
        },
    )
    return router
