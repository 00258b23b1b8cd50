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
