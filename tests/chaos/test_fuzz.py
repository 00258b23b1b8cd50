"""Property-based fuzzing of every operation of the OpenAPI document (schemathesis).

The app runs in-process over ASGI on a real database (PostgreSQL, or SQLite with
``SDNC_TEST_BACKEND=sqlite``). Every operation gets a bounded number of generated requests,
valid and invalid ones (NUL bytes included), and every response is checked: no 5xx, a status
code and content type the document declares, a body that conforms to the documented schema,
and invalid data refused with 400 (404 only where an encoded '/' in a path id addresses
another URI).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from controller.app import create_app
from controller.settings import Settings
from tests.support.figures import RECORDED, Figures

EXAMPLES_PER_OPERATION = 15
CONFIG: dict[str, Any] = {
    "generation": {"mode": "all", "allow-x00": True, "database": "none"},
    "checks": {"negative_data_rejection": {"expected-statuses": ["400", "404"]}},
}
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def fuzzed_app(settings: Settings) -> Iterator[FastAPI]:
    """The app on this test's database; it opens its own connections in the loop schemathesis
    runs it in, and its lifespan (the southbound replica) is stopped when the test ends."""
    app = create_app(settings)
    try:
        yield app
    finally:
        asgi.shutdown_lifespans()


# What the whole file saw, recorded once at its end (a figure per operation would drown them).
TALLY = {"requests": 0, "2xx": 0, "4xx": 0, "5xx": 0, "non-conforming": 0}


@pytest.fixture(scope="module", autouse=True)
def _record_tally() -> Iterator[None]:
    yield
    figures = Figures(__name__.replace(".", "/") + ".py", RECORDED)
    figures.record("operations fuzzed", len(list(schema.get_all_operations())))
    for name, count in TALLY.items():
        figures.record(f"responses {name}" if name != "requests" else "requests sent", count)


def _document() -> dict[str, Any]:
    # The document alone needs no database; the requests go to the fixture's app.
    document: dict[str, Any] = create_app(Settings(database_url="sqlite://")).openapi()
    return document


schema = schemathesis.openapi.from_dict(_document(), config=SchemathesisConfig.from_dict(CONFIG))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_operation_answers_what_the_document_says(case: Any, fuzzed_app: FastAPI) -> None:
    response = case.call(app=fuzzed_app)
    TALLY["requests"] += 1
    TALLY[f"{response.status_code // 100}xx"] = TALLY.get(f"{response.status_code // 100}xx", 0) + 1
    try:
        case.validate_response(response, checks=CHECKS)
    except Exception:
        TALLY["non-conforming"] += 1
        raise
    if response.status_code == 404 and _has_invalid_path(case):
        # The one invalid path a 404 is right for: an encoded '/' makes it another URI.
        assert "%2F" in case.formatted_path.upper(), case.formatted_path


def _has_invalid_path(case: Any) -> bool:
    meta = case.meta
    return meta is not None and any(
        location == ParameterLocation.PATH and component.mode.is_negative
        for location, component in meta.components.items()
    )
