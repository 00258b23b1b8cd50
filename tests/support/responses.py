"""Judging many responses at once, as the concurrency and chaos tests do: describe them for a
failure message, refuse any 5xx, read the NC error code."""

from __future__ import annotations

from collections.abc import Sequence

import httpx


def describe(responses: Sequence[httpx.Response]) -> str:
    return "\n".join(
        f"{r.request.method} {r.request.url.path} -> {r.status_code} {r.text[:300]}"
        for r in responses
    )


def assert_no_5xx(responses: Sequence[httpx.Response]) -> None:
    failed = [r for r in responses if r.status_code >= 500]
    assert not failed, describe(failed)


def error_code(response: httpx.Response) -> str:
    code = response.json()["error"]["code"]
    assert isinstance(code, str)
    return code
