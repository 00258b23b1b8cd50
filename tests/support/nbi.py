"""Helpers for API tests that talk to the NBI the way MS-NCNBI clients do.

``put`` / ``get`` / ``get_all`` / ``delete`` assert success and return the JSON; ``put_raw``
returns the response for tests about status codes and headers; ``assert_stored`` proves a
write's answer is what a read gets back. Paths may be given without
the ``/networking/v1`` prefix. Every resource-family negative test goes through
``assert_put_rejected`` / ``assert_delete_rejected``, which also prove that the failed request
changed nothing: the resource (and its top-level ancestor) reads back exactly as before, or is
still absent. Request bodies come from ``tests.support.bodies``.

Servers and networkInterfaces carry the read-only ``configurationState`` (what the host agents
report); ``without_configuration_state`` drops it for tests about something else, and
``without_read_times`` drops only its ``lastUpdatedTime``, which is the time of the read.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

V1 = "/networking/v1"
# What PowerShell's Invoke-RestMethod sends with a JSON body.
PS_HEADERS = {"Accept": "application/json", "Content-Type": "application/json; charset=UTF-8"}
# A weak ETag around a GUID, as every resource carries it.
ETAG = re.compile(r'^W/"([0-9a-f-]{36})"$')

Json = dict[str, Any]


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to ``app`` in-process, with its lifespan running."""
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://nc") as http:
            yield http


def url(path: str) -> str:
    """``/credentials/c1`` as a request URL; full ``/networking/...`` paths are kept."""
    return path if path.lower().startswith("/networking/") else V1 + path


def assert_etag(value: str) -> None:
    """``value`` is a weak ETag around a GUID."""
    match = ETAG.match(value)
    assert match is not None, value
    uuid.UUID(match.group(1))


async def put_raw(client: httpx.AsyncClient, path: str, body: object) -> httpx.Response:
    """PUT ``body`` as PowerShell does; the response, unchecked."""
    return await client.put(url(path), json=body, headers=PS_HEADERS)


async def put(
    client: httpx.AsyncClient, path: str, body: object, *, status: int | None = None
) -> Json:
    """PUT ``body``; asserts success (``status`` when given, else 200 or 201) and the ETag."""
    response = await put_raw(client, path, body)
    expected = (status,) if status is not None else (200, 201)
    assert response.status_code in expected, response.text
    result: Json = response.json()
    assert response.headers["etag"] == result["etag"]
    assert_etag(result["etag"])
    return result


async def get(client: httpx.AsyncClient, path: str) -> Json:
    """GET one resource; asserts 200 and the ``ETag`` header."""
    response = await client.get(url(path), headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    result: Json = response.json()
    assert response.headers["etag"] == result["etag"]
    assert_etag(result["etag"])
    return result


async def get_all(client: httpx.AsyncClient, path: str) -> list[Json]:
    """GET a collection; asserts the single-page list envelope."""
    response = await client.get(url(path), headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    body: Json = response.json()
    assert body["nextLink"] == ""
    value: list[Json] = body["value"]
    return value


async def delete(client: httpx.AsyncClient, path: str, *, status: int = 200) -> None:
    response = await client.delete(url(path))
    assert response.status_code == status, response.text


async def assert_absent(client: httpx.AsyncClient, path: str) -> None:
    """GET ``path`` is 404 NotFound."""
    assert_error(await client.get(url(path)), 404, "NotFound")


async def assert_stored(client: httpx.AsyncClient, written: Json) -> Json:
    """``written``, what a write answered, is what the store holds: a GET of its
    ``resourceRef`` reads it back exactly (but for when configurationState was read).
    Returns what the GET read."""
    stored = await get(client, written["resourceRef"])
    assert without_read_times(stored) == without_read_times(written)
    return stored


def assert_holds(properties: Json, sent: Json) -> None:
    """``properties`` (as stored) hold every member of ``sent`` with the value sent."""
    assert {name: properties.get(name) for name in sent} == sent, properties


def props(resource: Json) -> Json:
    properties: Json = resource["properties"]
    return properties


def refs(items: list[Json]) -> list[str]:
    """The ``resourceRef`` of each reference (or embedded resource) in ``items``."""
    return [item["resourceRef"] for item in items]


def ids(items: list[Json]) -> list[str]:
    """The ``resourceId`` of each resource in ``items``."""
    return [item["resourceId"] for item in items]


def without_etags(value: Any) -> Any:
    """``value`` with every ``etag`` member (the root's and the children's copies) removed:
    they change on every write."""
    if isinstance(value, dict):
        return {k: without_etags(v) for k, v in value.items() if k != "etag"}
    if isinstance(value, list):
        return [without_etags(item) for item in value]
    return value


def _without(value: Any, drop: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, drop) for k, v in value.items() if not drop(k, v)}
    if isinstance(value, list):
        return [_without(item, drop) for item in value]
    return value


def without_configuration_state(value: Any) -> Any:
    """``value`` (a resource, a list, properties) without any ``configurationState``: for
    tests about something else than what the hosts applied."""
    return _without(value, lambda key, _: key == "configurationState")


def without_read_times(value: Any) -> Any:
    """``value`` without the ``lastUpdatedTime`` of every ``configurationState`` (it says when
    the state was read, so two reads differ in it and nothing else)."""
    if isinstance(value, dict):
        result = {k: without_read_times(v) for k, v in value.items()}
        state = result.get("configurationState")
        if isinstance(state, dict):
            result["configurationState"] = {
                k: v for k, v in state.items() if k != "lastUpdatedTime"
            }
        return result
    if isinstance(value, list):
        return [without_read_times(item) for item in value]
    return value


def assert_configuration_state(resource: Json, status: str, *codes: str) -> Json:
    """``resource`` (a server or networkInterface) has a well-formed ``configurationState``
    with ``status`` and exactly the ``detailedInfo`` codes ``codes`` (in order), e.g.
    ``assert_configuration_state(nic, "Failure", "HostNotConnectedToController")``. Returns
    the state."""
    state: Json = resource["properties"]["configurationState"]
    assert set(state) == {"id", "status", "lastUpdatedTime", "detailedInfo"}, state
    assert state["id"] == resource["instanceId"]
    assert state["status"] == status, state
    assert datetime.fromisoformat(state["lastUpdatedTime"]).tzinfo is not None
    assert [d["code"] for d in state["detailedInfo"]] == list(codes), state
    for detail in state["detailedInfo"]:
        assert detail["source"] == "VirtualSwitch"
        assert detail["message"]
    return state


def child(resource: Json, collection: str, resource_id: str) -> Json:
    """The embedded child ``resource_id`` of ``properties[collection]``."""
    for item in resource["properties"][collection]:
        if item["resourceId"] == resource_id:
            found: Json = item
            return found
    raise AssertionError(f"no {collection} '{resource_id}' in {resource['resourceRef']}")


def target_segments(target: str) -> list[str]:
    """``/accessControlLists/A/aclRules/r1/properties/priority`` (or a shorter suffix of it,
    dotted as ``properties.priority`` where that reads better) as a list of path segments."""
    return [part for part in re.split(r"[./\[\]]+", target) if part]


def assert_error(
    response: httpx.Response, status: int, code: str, target: str | None = None
) -> Json:
    """The NC error envelope (JSON, with a request id) with ``code`` and a message, and an
    ``error.target`` whose path ends with the segments of ``target`` (``"properties/priority"``,
    ``"aclRules/r2/properties/priority"``); routing errors (404, 405 on a URI) name no member.
    Returns the error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-ms-request-id"]
    error: Json = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    if target is not None:
        wanted = target_segments(target)
        got = target_segments(error.get("target", ""))
        assert wanted, "name the member the error must point at"
        assert got[-len(wanted) :] == wanted, f"target {error.get('target')!r} is not {target}"
    return error


def _watched(path: str) -> list[str]:
    """``path`` and its top-level resource (``/logicalNetworks/L`` for ``.../ipPools/P``)."""
    parts = path.strip("/").split("/")
    top = "/" + "/".join(parts[:2])
    return [path] if top == path else [path, top]


async def _snapshot(client: httpx.AsyncClient, paths: list[str]) -> dict[str, object]:
    shots: dict[str, object] = {}
    for path in paths:
        response = await client.get(url(path))
        assert response.status_code in (200, 404), response.text
        shots[path] = without_read_times(response.json()) if response.status_code == 200 else 404
    return shots


async def assert_put_rejected(
    client: httpx.AsyncClient,
    path: str,
    body: object,
    *,
    target: str,
    code: str = "InvalidInput",
    status: int = 400,
    watch: tuple[str, ...] = (),
) -> Json:
    """PUT ``body`` fails with ``status``/``code``/``target`` and leaves ``path``, its
    top-level resource and every path in ``watch`` exactly as they were (or absent)."""
    paths = [*_watched(path), *watch]
    before = await _snapshot(client, paths)
    response = await put_raw(client, path, body)
    error = assert_error(response, status, code, target)
    assert await _snapshot(client, paths) == before
    return error


async def assert_delete_rejected(
    client: httpx.AsyncClient,
    path: str,
    *,
    target: str,
    code: str = "ResourceInUse",
    status: int = 409,
    watch: tuple[str, ...] = (),
) -> Json:
    """DELETE fails and leaves ``path``, its top-level resource and ``watch`` unchanged."""
    paths = [*_watched(path), *watch]
    before = await _snapshot(client, paths)
    response = await client.delete(url(path))
    error = assert_error(response, status, code, target)
    assert await _snapshot(client, paths) == before
    return error
