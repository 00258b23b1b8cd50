"""Checks a response against the operation the OpenAPI document has for it: status code,
content type and body schema (schemathesis' conformance checks)."""

from __future__ import annotations

import re

import httpx
import schemathesis
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from controller.app import create_app
from controller.settings import Settings

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The document alone needs no database.
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(database_url="sqlite://")).openapi())


def assert_documented(response: httpx.Response) -> str:
    """``response`` is what the document declares for its request; returns the operation's
    label."""
    method = response.request.method
    path = response.request.url.path
    operation = SCHEMA.find_operation_by_path(method, path)
    assert operation is not None, f"{method} {path} is in no operation of the document"
    parameters = path_parameters(operation.path, path)
    operation.Case(path_parameters=parameters).validate_response(response, checks=CHECKS)
    label: str = operation.label
    return label


def path_parameters(template: str, path: str) -> dict[str, str]:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    match = re.fullmatch(pattern, path)
    assert match is not None, (template, path)
    return match.groupdict()
