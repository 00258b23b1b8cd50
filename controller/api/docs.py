"""OpenAPI description of the NBI, derived from the resource registry.

Handlers read raw bodies (the tolerant parser is ours, not FastAPI's), so the request and
response schemas are described here: one envelope schema per kind (``AccessControlList``), with
its properties, embedded children and read-only reverse references, a list schema, and the
error envelope.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model
from pydantic.json_schema import models_json_schema

from controller.core.kinds import Kind, Registry

_REF = "#/components/schemas/{model}"
_VERSIONS = ["v1", "v2", "v3", "v4", "v5"]
_ID_PARAMS = ("grandParentResourceId", "parentResourceId", "resourceId")


class ResourceRefOut(BaseModel):
    resourceRef: str


class ErrorDetailBody(BaseModel):
    code: str
    message: str
    target: str | None = None


class ErrorBody(BaseModel):
    code: str = Field(examples=["InvalidInput"])
    message: str
    target: str | None = None
    details: list[ErrorDetailBody] | None = None


class Error(BaseModel):
    """The MS-NCNBI error envelope returned with every 4xx and 5xx status."""

    error: ErrorBody


def _ro(annotation: Any, default: Any) -> Any:
    return (annotation, Field(default=default, json_schema_extra={"readOnly": True}))


def resource_models(registry: Registry) -> dict[str, type[BaseModel]]:
    """The envelope model of every kind, by kind key (documentation only)."""
    models: dict[str, type[BaseModel]] = {}
    for kind in sorted(registry.kinds, key=lambda k: -k.depth):
        fields: dict[str, Any] = {"provisioningState": _ro(str, "Succeeded")}
        for child in registry.children_of(kind):
            child_model: Any = models[child.key]
            fields[child.name] = (list[child_model] | None, None)
        for backref in kind.backrefs:
            fields[backref.member] = _ro(list[ResourceRefOut], [])
        for member, annotation in kind.computed_members:
            fields[member] = _ro(annotation | None, None)
        properties: Any = create_model(
            f"{kind.title}Properties", __base__=kind.properties, **fields
        )
        models[kind.key] = create_model(
            kind.title,
            __doc__=kind.description or None,
            resourceId=(str | None, None),
            resourceRef=_ro(str | None, None),
            instanceId=_ro(str | None, None),
            etag=_ro(str | None, None),
            tags=(dict[str, Any] | None, None),
            resourceMetadata=(dict[str, Any] | None, None),
            properties=(properties, ...),
        )
    return models


def list_model(kind: Kind, item: Any) -> type[BaseModel]:
    return create_model(f"{kind.title}List", value=(list[item], ...), nextLink=(str, ""))


def components(registry: Registry) -> dict[str, Any]:
    models = resource_models(registry)
    everything: list[type[BaseModel]] = [Error]
    for kind in registry.kinds:
        everything.append(models[kind.key])
        everything.append(list_model(kind, models[kind.key]))
    _, schema = models_json_schema([(m, "serialization") for m in everything], ref_template=_REF)
    return dict(schema.get("$defs", {}))


def _schema_ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF.format(model=name)}


def _json(name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _schema_ref(name)}},
    }


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Invalid input (validation, malformed JSON, bad reference)",
        404: "Not found",
        409: "Conflict, e.g. the resource is in use",
        412: "If-Match did not match, or the parent does not exist",
        413: "Body too large",
        415: "Body is not JSON",
        500: "Internal error",
        503: "Database unavailable",
    }
    return {str(s): _json("Error", reasons[s]) for s in statuses}


def _chain(kind: Kind) -> list[Kind]:
    return [*_chain(kind.parent), kind] if kind.parent is not None else [kind]


def _path_parameters(kind: Kind, *, item: bool) -> list[dict[str, Any]]:
    kinds = _chain(kind)
    names = list(_ID_PARAMS[len(_ID_PARAMS) - len(kinds) :])
    if not item or kind.singleton_id is not None:
        names = names[:-1]
    parameters: list[dict[str, Any]] = [
        {
            "name": "apiVersion",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": _VERSIONS},
        }
    ]
    parameters += [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]
    parameters.append(
        {
            "name": "x-ms-client-request-id",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "Client correlation id; echoed in the response.",
        }
    )
    return parameters


_WAIT = [
    {
        "name": "wait",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["applied"]},
        "description": "Answer only when every connected host the change touches has applied "
        "it (or the timeout passed); the x-sdnc-applied response header says which.",
    },
    {
        "name": "timeout",
        "in": "query",
        "required": False,
        "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": 10},
        "description": "Seconds to wait with wait=applied.",
    },
]


def _conditional(names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "header", "required": False, "schema": {"type": "string"}} for n in names
    ]


def list_operation(kind: Kind) -> dict[str, Any]:
    return {
        "parameters": _path_parameters(kind, item=False),
        "responses": {"200": _json(f"{kind.title}List", "The collection"), **_errors(404, 500)},
    }


def get_operation(kind: Kind) -> dict[str, Any]:
    return {
        "parameters": _path_parameters(kind, item=True),
        "responses": {"200": _json(kind.title, "The resource"), **_errors(404, 500)},
    }


def put_operation(kind: Kind) -> dict[str, Any]:
    return {
        "parameters": _path_parameters(kind, item=True)
        + _conditional(("If-Match", "If-None-Match"))
        + _WAIT,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _schema_ref(kind.title)}},
        },
        "responses": {
            "200": _json(kind.title, "Replaced"),
            "201": _json(kind.title, "Created"),
            **_errors(400, 409, 412, 413, 415, 500),
        },
    }


def delete_operation(kind: Kind) -> dict[str, Any]:
    return {
        "parameters": _path_parameters(kind, item=True) + _conditional(("If-Match",)) + _WAIT,
        "responses": {
            "200": {"description": "Deleted, with its children"},
            "204": {"description": "There was nothing to delete"},
            **_errors(409, 412, 500),
        },
    }


def operation(kind: Kind, name: str) -> tuple[str, dict[str, Any]]:
    """Summary and OpenAPI details of the ``list``/``get``/``put``/``delete`` operation."""
    if name == "list":
        return f"List {kind.name}", list_operation(kind)
    if name == "get":
        return f"Get one {kind.title}", get_operation(kind)
    if name == "put":
        return f"Create or replace a {kind.title}", put_operation(kind)
    return f"Delete a {kind.title} and its children", delete_operation(kind)
