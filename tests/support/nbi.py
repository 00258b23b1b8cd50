"""Helpers for API tests that talk to the NBI the way MS-NCNBI clients do.

Every negative test goes through ``assert_put_rejected`` / ``assert_delete_rejected``, which
also prove that the failed request changed nothing: the resource (and its top-level ancestor)
reads back exactly as before, or is still absent.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

V1 = "/networking/v1"
# What PowerShell's Invoke-RestMethod sends with a JSON body.
PS_HEADERS = {"Accept": "application/json", "Content-Type": "application/json; charset=UTF-8"}

Json = dict[str, Any]


def url(path: str) -> str:
    """``/credentials/c1`` as a request URL; full ``/networking/...`` paths are kept."""
    return path if path.lower().startswith("/networking/") else V1 + path


async def put(
    client: httpx.AsyncClient, path: str, body: object, *, status: int | None = None
) -> Json:
    """PUT ``body``; asserts success (``status`` when given, else 200 or 201)."""
    response = await client.put(url(path), json=body, headers=PS_HEADERS)
    expected = (status,) if status is not None else (200, 201)
    assert response.status_code in expected, response.text
    result: Json = response.json()
    assert response.headers["etag"] == result["etag"]
    return result


async def get(client: httpx.AsyncClient, path: str) -> Json:
    """GET one resource; asserts 200 and the ``ETag`` header."""
    response = await client.get(url(path), headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    result: Json = response.json()
    assert response.headers["etag"] == result["etag"]
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
    response = await client.get(url(path))
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "NotFound"


def props(resource: Json) -> Json:
    properties: Json = resource["properties"]
    return properties


def refs(items: list[Json]) -> list[str]:
    """The ``resourceRef`` of each reference (or embedded resource) in ``items``."""
    return [item["resourceRef"] for item in items]


def child(resource: Json, collection: str, resource_id: str) -> Json:
    """The embedded child ``resource_id`` of ``properties[collection]``."""
    for item in resource["properties"][collection]:
        if item["resourceId"] == resource_id:
            found: Json = item
            return found
    raise AssertionError(f"no {collection} '{resource_id}' in {resource['resourceRef']}")


def target_segments(target: str) -> list[str]:
    """``properties.aclRules[1].properties.priority`` and
    ``/accessControlLists/A/aclRules/r1/properties/priority`` as lists of path segments."""
    return [part for part in re.split(r"[./\[\]]+", target) if part]


def assert_error(
    response: httpx.Response, status: int, code: str, target: str | None = None
) -> Json:
    """The NC error envelope with ``code``, and an ``error.target`` whose path ends with the
    segments of ``target`` (``"properties/priority"``, ``"aclRules/r2/properties/priority"``);
    routing errors (404, 405 on a URI) name no member."""
    assert response.status_code == status, response.text
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
        shots[path] = response.json() if response.status_code == 200 else 404
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
    response = await client.put(url(path), json=body, headers=PS_HEADERS)
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
