"""The ASGI middleware in front of every request.

* canonical paths: ``/Networking/V1/logicalnetworks/`` is routed as
  ``/networking/v1/logicalNetworks`` (NC clients mix the casing of path segments and add
  trailing slashes);
* request ids: every response carries ``x-ms-request-id``; ``x-ms-client-request-id`` is echoed;
* body limit: bodies over the limit are refused with 413 before or while they are read;
* last resort: an unexpected exception becomes a 500 error envelope, never a bare text page;
  a client that left (or that the server dropped for being too slow) before its body was read
  gets no answer and no error in the log.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import quote

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.api.responses import error_response
from controller.core.kinds import Registry
from controller.errors import ControllerError, PayloadTooLarge

log = logging.getLogger(__name__)


def canonical_path(registry: Registry, path: str) -> str:
    """The canonical spelling of an NBI path; unknown paths come back unchanged (they 404)."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "" or parts[1].lower() != "networking":
        return path
    if parts[-1] == "" and len(parts) > 3:
        parts = parts[:-1]
    if len(parts) == 3:
        return "/networking/" + parts[2].lower()
    segments = parts[3:]
    canonical: list[str] = []
    kind = None
    for index, segment in enumerate(segments):
        if index % 2 == 0:
            kind = registry.top(segment) if kind is None else registry.child(kind, segment)
            if kind is None:
                return path
            canonical.append(kind.name)
        elif kind is not None and kind.singleton_id is not None:
            same = segment.lower() == kind.singleton_id.lower()
            canonical.append(kind.singleton_id if same else segment)
        else:
            canonical.append(segment)
    return "/".join(["", "networking", parts[2].lower(), *canonical])


class NbiMiddleware:
    def __init__(self, app: ASGIApp, *, registry: Registry, max_body_bytes: int) -> None:
        self.app = app
        self.registry = registry
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = canonical_path(self.registry, scope["path"])
        if path != scope["path"]:
            scope = {**scope, "path": path, "raw_path": quote(path).encode()}
        ids = self._id_headers(scope)
        started = False

        async def send_with_ids(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *ids]
            await send(message)

        too_large = self._declared_too_large(scope)
        if too_large is not None:
            await error_response(too_large)(scope, receive, send_with_ids)
            return
        try:
            await self.app(scope, self._limited(receive), send_with_ids)
        except ClientDisconnect:
            log.debug("the client of %s %s left", scope.get("method"), scope.get("path"))
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            error = ControllerError("the controller hit an unexpected error; see its log")
            await error_response(error)(scope, receive, send_with_ids)

    @staticmethod
    def _id_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
        headers = [(b"x-ms-request-id", str(uuid.uuid4()).encode())]
        for name, value in scope.get("headers", []):
            if name == b"x-ms-client-request-id":
                headers.append((b"x-ms-client-request-id", value))
        return headers

    def _declared_too_large(self, scope: Scope) -> PayloadTooLarge | None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return None
                if declared > self.max_body_bytes:
                    return self._too_large()
        return None

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body is larger than {self.max_body_bytes} bytes")

    def _limited(self, receive: Receive) -> Receive:
        received = 0

        async def limited_receive() -> MutableMapping[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise self._too_large()
            return message

        return limited_receive
