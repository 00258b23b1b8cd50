"""``SDNC_LOG_FORMAT=json``: one JSON object per line, and every line a request causes carries
its request id and resource path."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from controller.api.middleware import NbiMiddleware
from controller.logs import JsonFormatter
from controller.resources import REGISTRY
from controller.settings import Settings
from tests.support.bodies import acl
from tests.support.server import ControllerServer, running_controller


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the root logger emits meanwhile, formatted as ``SDNC_LOG_FORMAT=json`` does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_lines_of_a_failing_request_carry_its_id_path_and_traceback(
    json_lines: io.StringIO,
) -> None:
    async def failing_app(scope: Scope, receive: Receive, send: Send) -> None:
        logging.getLogger("controller.service.test").info("reading %s", "web")
        raise RuntimeError("boom")

    app = NbiMiddleware(failing_app, registry=REGISTRY, max_body_bytes=1024)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get(
            "/Networking/V1/accesscontrollists/web", headers={"x-ms-client-request-id": "c-1"}
        )
    assert response.status_code == 500
    request_id = response.headers["x-ms-request-id"]
    lines = _lines(json_lines)
    mine = [line for line in lines if line.get("requestId") == request_id]
    assert [line["logger"] for line in mine] == [
        "controller.service.test",
        "controller.api.middleware",
    ]
    for line in mine:
        assert line["path"] == "/networking/v1/accessControlLists/web"  # canonical
        assert line["method"] == "GET"
        assert line["clientRequestId"] == "c-1"
    assert mine[0]["message"] == "reading web"
    assert mine[1]["level"] == "ERROR"
    assert "RuntimeError: boom" in str(mine[1]["exception"])

    logging.getLogger("controller.elsewhere").warning("outside any request")
    outside = _lines(json_lines)[-1]
    assert outside["message"] == "outside any request"
    assert "requestId" not in outside
    assert "path" not in outside


def test_the_format_is_a_setting_in_any_casing() -> None:
    assert Settings(log_format="JSON").log_format == "json"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log_format"):
        Settings(log_format="xml")  # type: ignore[arg-type]


@pytest.fixture
def json_controller(database_url: str) -> Iterator[ControllerServer]:
    env = {"SDNC_LOG_FORMAT": "json"}
    with running_controller(database_url, log_level="info", extra_env=env) as server:
        yield server


@pytest.mark.slow
def test_a_running_controller_logs_json_lines_with_request_ids(
    json_controller: ControllerServer,
) -> None:
    offset = json_controller.log_size()
    base = json_controller.base_url
    created = httpx.put(f"{base}/networking/v1/AccessControlLists/web", json=acl())
    missing = httpx.get(f"{base}/networking/v1/accessControlLists/nope")
    assert (created.status_code, missing.status_code) == (201, 404)

    lines = [json.loads(line) for line in json_controller.log_since(offset).splitlines()]
    assert lines, "the controller logged nothing"
    for response, path in (
        (created, "/networking/v1/accessControlLists/web"),
        (missing, "/networking/v1/accessControlLists/nope"),
    ):
        caused = [
            line for line in lines if line.get("requestId") == response.headers["x-ms-request-id"]
        ]
        assert caused, f"no line carries the request id of {path}"
        assert {line["path"] for line in caused} == {path}
        access = [line for line in caused if line["logger"] == "uvicorn.access"]
        assert len(access) == 1
        assert str(response.status_code) in str(access[0]["message"])
    assert {"time", "level", "logger", "message"} <= set(lines[0])
