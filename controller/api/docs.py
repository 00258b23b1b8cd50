"""OpenAPI description of the NBI, derived from the resource registry.

Handlers read raw bodies (the tolerant parser is ours, not FastAPI's), so the request and
response schemas are described here, from the same models in their two JSON schema modes:

* responses (``AccessControlList``): the canonical form the controller writes, with its
  properties, embedded children and read-only reverse references, a list schema, the error
  envelope;
* requests (``AccessControlListInput``): what the controller accepts, so that a body the
  schema refuses is one the controller refuses (400): integers also as strings of digits,
  booleans also as ``"True"``, enumerations in any casing, ``null`` for an optional member,
  read-only members anything (they are ignored).

Every operation declares every status it can answer, each error with the error envelope.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, Field, GetJsonSchemaHandler, WithJsonSchema, create_model
from pydantic.json_schema import JsonSchemaValue, models_json_schema
from pydantic_core import CoreSchema

from controller.core.kinds import Kind, Registry
from controller.core.shape import Shape

_REF = "#/components/schemas/{model}"
_INPUT = "Input"
_ID_PARAMS = ("grandParentResourceId", "parentResourceId", "resourceId")
# What check_resource_id accepts, but for "." and "..": 1-256 characters, no path or control
# characters, no white space at either end.
_ID_CHAR = r"[^/\\?#%\x00-\x1f\x7f-\x9f]"
_ID_END = r"[^\s/\\?#%\x00-\x1f\x7f-\x9f]"
RESOURCE_ID_PATTERN = f"^{_ID_END}({_ID_CHAR}{{0,254}}{_ID_END})?$"


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


# A read-only member in a request: anything, since it is ignored.
_IGNORED = WithJsonSchema(
    {"readOnly": True, "description": "Read-only; ignored on input."}, "validation"
)


def _ro(annotation: Any, default: Any) -> Any:
    return (
        Annotated[annotation, _IGNORED],
        Field(default=default, json_schema_extra={"readOnly": True}),
    )


class _Envelope(BaseModel):
    """The resource envelope; a request may leave out ``properties`` (and send ``null``)."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if handler.mode == "validation":
            target = handler.resolve_ref_schema(json_schema)
            target["required"] = [r for r in target.get("required", []) if r != "properties"]
            if not target["required"]:
                del target["required"]
            members = target["properties"]
            members["properties"] = {"anyOf": [members["properties"], {"type": "null"}]}
        return json_schema


def resource_models(registry: Registry) -> dict[str, type[BaseModel]]:
    """The envelope model of every kind, by kind key (documentation only)."""
    models: dict[str, type[BaseModel]] = {}
    for kind in sorted(registry.kinds, key=lambda k: -k.depth):
        fields: dict[str, Any] = {"provisioningState": _ro(str, "Succeeded")}
        for child in registry.children_of(kind):
            child_model: Any = models[child.key]
            fields[child.name] = (list[child_model] | None, None)
        for backref in kind.backrefs:
            if backref.single:
                fields[backref.member] = _ro(ResourceRefOut | None, None)
            else:
                fields[backref.member] = _ro(list[ResourceRefOut], [])
        for member, annotation in kind.computed_members:
            fields[member] = _ro(annotation | None, None)
        for rendered in kind.shape.members:
            if rendered.read_only is not None:
                fields[rendered.name] = _ro(rendered.read_only, rendered.value)
        properties: Any = create_model(
            f"{kind.title}Properties", __base__=kind.properties, **fields
        )
        models[kind.key] = create_model(
            kind.title,
            __base__=_Envelope,
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


class Discovery(BaseModel):
    """GET /networking/discovery: the REST versions this controller serves."""

    resourceRef: str
    properties: dict[str, Any]


def list_model(kind: Kind, item: Any) -> type[BaseModel]:
    return create_model(f"{kind.title}List", value=(list[item], ...), nextLink=(str, ""))


def components(registry: Registry, extra: Sequence[type[BaseModel]] = ()) -> dict[str, Any]:
    """Response schemas (by kind title) and request schemas (the same, suffixed ``Input``)."""
    models = resource_models(registry)
    outputs: list[type[BaseModel]] = [Error, Discovery, *extra]
    for kind in registry.kinds:
        outputs.append(models[kind.key])
        outputs.append(list_model(kind, models[kind.key]))
    _, written = models_json_schema([(m, "serialization") for m in outputs], ref_template=_REF)
    inputs = [(models[kind.key], "validation") for kind in registry.kinds]
    _, read = models_json_schema(inputs, ref_template=_REF)  # type: ignore[arg-type]
    schemas = dict(written.get("$defs", {}))
    shaped: dict[str, Shape] = {}
    for kind in registry.kinds:
        _document_shape(schemas, f"{kind.title}Properties", kind.shape, shaped)
    schemas.update(
        {name + _INPUT: _suffix_refs(schema) for name, schema in read.get("$defs", {}).items()}
    )
    return schemas


def _document_shape(
    schemas: dict[str, Any], name: str, shape: Shape, shaped: dict[str, Shape]
) -> None:
    """Mark the members ``shape`` always renders as required in the response schema ``name``
    (and its nested objects' schemas), never null, with the value rendered by default."""
    if name in shaped:
        if shaped[name] is not shape:
            # One schema cannot tell the truth about two different shapes.
            raise ValueError(f"the response schema {name} is shaped twice")
        return
    shaped[name] = shape
    schema = schemas[name]
    members: dict[str, Any] = schema["properties"]
    required: list[str] = list(schema.get("required", []))
    for member in shape.members:
        if member.always or member.read_only is not None:
            members[member.name] = {
                **_not_null(members[member.name]),
                "default": member.rendered_default(),
            }
            if member.name not in required:
                required.append(member.name)
        if member.shape is not None:
            _document_shape(schemas, _component(members[member.name]), member.shape, shaped)
    if required:
        schema["required"] = required


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    branches = [b for b in schema.get("anyOf", ()) if b != {"type": "null"}]
    if "anyOf" not in schema:
        return schema
    kept = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**kept, **branches[0]} if len(branches) == 1 else {**kept, "anyOf": branches}


def _component(schema: dict[str, Any]) -> str:
    """The name of the component schema a member's schema refers to (the object's, or the
    array items')."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[1]
    for inner in (schema.get("items"), *schema.get("anyOf", ())):
        if isinstance(inner, dict):
            return _component(inner)
    raise ValueError(f"no object schema in {schema}")


def _suffix_refs(value: Any) -> Any:
    """``value`` with every ``$ref`` pointing at the ``Input`` variant of its schema."""
    if isinstance(value, dict):
        return {
            key: (item + _INPUT if key == "$ref" else _suffix_refs(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_suffix_refs(item) for item in value]
    return value


def _schema_ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF.format(model=name)}


_REQUEST_ID = {
    "x-ms-request-id": {
        "description": "The controller's id of this request (in its log).",
        "schema": {"type": "string"},
    }
}
_ETAG = {"ETag": {"description": "The resource's etag.", "schema": {"type": "string"}}}


def json_doc(name: str, description: str, *, etag: bool = False) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {**_REQUEST_ID, **(_ETAG if etag else {})},
        "content": {"application/json": {"schema": _schema_ref(name)}},
    }


def _empty(description: str) -> dict[str, Any]:
    return {"description": description, "headers": dict(_REQUEST_ID)}


_REASONS = {
    400: "Invalid input: the body, a path segment or a query parameter (the target names it)",
    404: "No such resource, or an API version that is not served",
    409: "Conflict, e.g. the resource is in use",
    412: "If-Match / If-None-Match did not match, or the parent does not exist",
    413: "Body too large",
    415: "Body is not JSON, or not in a charset",
    500: "Internal error (a bug; logged with the request id)",
    503: "Database unavailable",
}


def discovery_responses() -> dict[str, Any]:
    return {"200": json_doc("Discovery", "The served REST versions"), **errors()}


def errors(*statuses: int) -> dict[str, Any]:
    """The error responses ``statuses``, plus those every request can get: 413 (the body limit
    holds for every method), 500 and 503."""
    wanted = sorted({*statuses, 413, 500, 503})
    return {str(s): json_doc("Error", _REASONS[s]) for s in wanted}


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
            "schema": {"type": "string", "pattern": "^v[0-9]{1,9}$"},
            "description": "v1 to v5 are served (the same model); other versions answer 404.",
        }
    ]
    id_schema = {"type": "string", "pattern": RESOURCE_ID_PATTERN}
    parameters += [{"name": n, "in": "path", "required": True, "schema": id_schema} for n in names]
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
        "schema": {"type": "string", "pattern": "^[Aa][Pp][Pp][Ll][Ii][Ee][Dd]$"},
        "description": "applied (in any casing): answer only when every connected host the "
        "change touches has applied it (or the timeout passed); the x-sdnc-applied response "
        "header says which.",
    },
    {
        "name": "timeout",
        "in": "query",
        "required": False,
        "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": 10},
        "description": "Seconds to wait with wait=applied (checked also without it).",
    },
]


def _conditional(names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "header", "required": False, "schema": {"type": "string"}} for n in names
    ]


def list_operation(kind: Kind) -> dict[str, Any]:
    return {
        "parameters": _path_parameters(kind, item=False),
        "responses": {"200": json_doc(f"{kind.title}List", "The collection"), **errors(400, 404)},
    }


def get_operation(kind: Kind) -> dict[str, Any]:
    return {
        "parameters": _path_parameters(kind, item=True),
        "responses": {"200": json_doc(kind.title, "The resource", etag=True), **errors(400, 404)},
    }


def put_operation(kind: Kind) -> dict[str, Any]:
    return {
        "parameters": _path_parameters(kind, item=True)
        + _conditional(("If-Match", "If-None-Match"))
        + _WAIT,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _schema_ref(kind.title + _INPUT)}},
        },
        "responses": {
            "200": json_doc(kind.title, "Replaced", etag=True),
            "201": json_doc(kind.title, "Created", etag=True),
            **errors(400, 404, 409, 412, 415),
        },
    }


def delete_operation(kind: Kind) -> dict[str, Any]:
    return {
        "parameters": _path_parameters(kind, item=True) + _conditional(("If-Match",)) + _WAIT,
        # As NC answers: no body, so no Content-Type either.
        "responses": {
            "200": _empty("Deleted, with its children (no body)"),
            "204": _empty("There was nothing to delete"),
            **errors(400, 404, 409, 412),
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
