"""The HTTP side of the client commands: one controller base URL, an optional bearer token
(``SDNC_TOKEN``), and errors turned into one readable line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

API = "/networking/v1"
DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT = 30.0
APPLIED_HEADER = "x-sdnc-applied"


class ClientError(Exception):
    """What went wrong, as one line for the operator; ``status`` is the HTTP status (0 when
    the controller could not be reached)."""

    def __init__(self, message: str, status: int = 0, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class PutResult:
    created: bool
    resource: dict[str, Any]
    # Whether the hosts applied it (None: not waited for).
    applied: bool | None


def resource_url(ref: str) -> str:
    """``/virtualNetworks/my net`` as a URL path under the API, each segment encoded."""
    segments = [quote(segment, safe="") for segment in ref.strip("/").split("/")]
    return f"{API}/{'/'.join(segments)}"


class Client:
    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = TIMEOUT):
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get(self, ref: str) -> dict[str, Any]:
        return _json(self._send("GET", resource_url(ref)))

    def get_path(self, path: str) -> dict[str, Any]:
        """A document outside the NBI tree (``/southbound/v1/hosts``)."""
        return _json(self._send("GET", path))

    def put(
        self,
        ref: str,
        document: dict[str, Any],
        *,
        if_match: str | None = None,
        wait: float | None = None,
    ) -> PutResult:
        headers = {"If-Match": if_match} if if_match else {}
        params = {"wait": "applied", "timeout": f"{wait:g}"} if wait is not None else {}
        response = self._send(
            "PUT", resource_url(ref), json=document, headers=headers, params=params, wait=wait
        )
        applied = response.headers.get(APPLIED_HEADER)
        return PutResult(
            response.status_code == 201,
            _json(response),
            None if applied is None else applied == "true",
        )

    def delete(
        self, ref: str, *, if_match: str | None = None, wait: float | None = None
    ) -> bool | None:
        """Delete ``ref``; whether the hosts applied the delete (None: not waited for)."""
        headers = {"If-Match": if_match} if if_match else {}
        params = {"wait": "applied", "timeout": f"{wait:g}"} if wait is not None else {}
        response = self._send(
            "DELETE", resource_url(ref), headers=headers, params=params, wait=wait
        )
        applied = response.headers.get(APPLIED_HEADER)
        return None if applied is None else applied == "true"

    def _send(
        self, method: str, path: str, *, wait: float | None = None, **options: Any
    ) -> httpx.Response:
        timeout = TIMEOUT + (wait or 0.0)  # the controller answers a wait at its end
        try:
            response = self._http.request(method, path, timeout=timeout, **options)
        except httpx.TransportError as exc:
            raise ClientError(
                f"cannot reach the controller at {self.base_url} ({exc or type(exc).__name__}); "
                "give its URL with --controller or SDNC_URL"
            ) from exc
        if response.status_code >= 400:
            raise _error(response)
        return response


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError as exc:
        raise ClientError(f"the controller answered {response.status_code} without JSON") from exc
    if not isinstance(document, dict):
        raise ClientError("the controller answered JSON that is not an object")
    return document


def _error(response: httpx.Response) -> ClientError:
    """The NC error envelope as ``404 NotFound: message (target: x)``."""
    try:
        error = response.json()["error"]
        code, message, target = error["code"], error["message"], error.get("target")
    except (ValueError, KeyError, TypeError):
        text = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        return ClientError(f"{response.status_code}: {text or response.reason_phrase}")
    if response.status_code in (401, 403):
        message += " (check the credential in SDNC_TOKEN)"
    where = f" (target: {target})" if target else ""
    return ClientError(
        f"{response.status_code} {code}: {message}{where}", response.status_code, code
    )
