"""The committed OpenAPI document is the contract; it must match what the app serves."""

from __future__ import annotations

import json
from pathlib import Path

from openapi_spec_validator import validate

from controller.cli import openapi_text

COMMITTED = Path(__file__).parents[2] / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_app() -> None:
    assert COMMITTED.read_text() == openapi_text(), (
        "openapi/openapi.json is stale: regenerate it with `sdnc openapi --output "
        "openapi/openapi.json`"
    )


def test_openapi_document_is_valid() -> None:
    validate(json.loads(openapi_text()))


def test_every_nbi_operation_documents_the_error_envelope() -> None:
    document = json.loads(openapi_text())
    for path, operations in document["paths"].items():
        if not path.startswith("/networking/{apiVersion}"):
            continue
        for method, operation in operations.items():
            errors = [s for s in operation["responses"] if s.startswith(("4", "5"))]
            assert errors, f"{method.upper()} {path} documents no error response"
            for status in errors:
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}


EXPECTED_ERRORS = {
    "get": {"400", "404", "413", "500", "503"},
    "put": {"400", "404", "409", "412", "413", "415", "500", "503"},
    "delete": {"400", "404", "409", "412", "413", "500", "503"},
}
# Diagnostics are operations, not resources: no etag to match, nothing to be in conflict with.
DIAGNOSTICS_ERRORS = {
    "put": {"400", "404", "413", "415", "500", "503"},
    "get": EXPECTED_ERRORS["get"],
}


def test_every_nbi_operation_declares_every_status_it_can_answer() -> None:
    document = json.loads(openapi_text())
    for path, operations in document["paths"].items():
        if not path.startswith("/networking/{apiVersion}"):
            continue
        for method, operation in operations.items():
            declared = set(operation["responses"])
            expected = DIAGNOSTICS_ERRORS if "/diagnostics/" in path else EXPECTED_ERRORS
            missing = expected[method] - declared
            assert not missing, f"{method.upper()} {path} does not declare {sorted(missing)}"


def test_delete_is_documented_without_a_body() -> None:
    """NC answers a DELETE with no body and so no Content-Type; the document says the same."""
    document = json.loads(openapi_text())
    deletes = [ops["delete"] for ops in document["paths"].values() if "delete" in ops]
    assert deletes
    for operation in deletes:
        assert "content" not in operation["responses"]["200"], operation["operationId"]
        assert "content" not in operation["responses"]["204"], operation["operationId"]


def test_requests_are_described_by_the_input_schemas() -> None:
    """A PUT body is described by what the controller accepts (``...Input``: integers also as
    digits, enums in any casing, nulls); responses by what it writes."""
    document = json.loads(openapi_text())
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        if "put" not in operations or "/diagnostics/" in path:  # operations, not resources
            continue
        body = operations["put"]["requestBody"]["content"]["application/json"]["schema"]
        answer = operations["put"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert body["$ref"] == answer["$ref"] + "Input", path
    priority = schemas["AclRulePropertiesInput"]["properties"]["priority"]
    assert {"type": "string", "pattern": r"^\s*[+-]?[0-9]+\s*$"} in priority["anyOf"]
    assert schemas["AclRuleProperties"]["properties"]["priority"]["type"] == "integer"
