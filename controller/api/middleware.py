"""The ASGI middleware in front of every request.

* canonical paths: ``/Networking/V1/logicalnetworks/`` is routed as
  ``/networking/v1/logicalNetworks`` (NC clients mix the casing of path segments and add
  trailing slashes);
* request ids: every response carries ``x-ms-request-id``; ``x-ms-client-request-id`` is echoed;
  log lines the request causes carry both, with its canonical path (``controller/logs.py``);
* path segments: an NBI path whose segments are not UTF-8, are empty, or hold a control
  character is refused with 400 before routing (so before any database work: PostgreSQL
  cannot even compare a string holding NUL); an encoded ``/`` separates segments like ``/``;
* body limit: bodies over the limit are refused with 413 before or while they are read;
* last resort: an unexpected exception becomes a 500 error envelope, never a bare text page;
  a client that left (or that the server dropped for being too slow) before its body was read
  gets no answer and no error in the log.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import MutableMapping, Sequence
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.api.responses import error_response
from controller.core.kinds import Registry
from controller.errors import ControllerError, InvalidInput, PayloadTooLarge
from controller.logs import RequestContext, request_context

log = logging.getLogger(__name__)


def canonical_path(registry: Registry, path: str, words: Sequence[str] = ()) -> str:
    """The canonical spelling of an NBI path; unknown paths come back unchanged (they 404).
    Paths that start with one of ``words`` (fixed segments of routes that are no resource
    kind, like ``diagnostics/slbState``) get every segment that is one of them canonical."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "" or parts[1].lower() != "networking":
        return path
    if parts[-1] == "" and len(parts) > 3:
        parts = parts[:-1]
    if len(parts) == 3:
        return "/networking/" + parts[2].lower()
    segments = parts[3:]
    fixed = {word.lower(): word for word in words}
    if segments[0].lower() in fixed:
        canonical_words = [fixed.get(segment.lower(), segment) for segment in segments]
        return "/".join(["", "networking", parts[2].lower(), *canonical_words])
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


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def path_problem(raw_path: bytes) -> InvalidInput | None:
    """Why an NBI path (as sent, percent-encoded) cannot name a resource, or None. The error's
    target is the route parameter the segment is (``resourceId``, ``parentResourceId``...)."""
    segments = raw_path.split(b"/")
    for index, raw in enumerate(segments):
        shown = raw.decode("ascii", "backslashreplace")
        problem: str | None
        try:
            text = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            problem = f"the path segment '{shown}' is not percent-encoded UTF-8"
        else:
            inner = 0 < index < len(segments) - 1
            problem = _segment_problem(text, shown, inner=inner)
        if problem is not None:
            return InvalidInput(problem, target=_parameter(index, len(segments)))
    return None


def _segment_problem(text: str, shown: str, *, inner: bool) -> str | None:
    if not text and inner:
        return "the path has an empty segment ('//')"
    if _CONTROL.search(text):
        return f"the path segment '{shown}' holds a control character"
    return None


_ID_PARAMS = ("resourceId", "parentResourceId", "grandParentResourceId")


def _parameter(index: int, count: int) -> str | None:
    """The route parameter of segment ``index`` of ``/networking/{apiVersion}/type/id/...``."""
    if index == 2:
        return "apiVersion"
    position = index - 3  # among the segments after the version: type, id, type, id...
    if position < 0 or position % 2 == 0:
        return None
    # A collection path (odd count) names the parent of its last type segment.
    item_length = count - 3 if (count - 3) % 2 == 0 else count - 2
    rank = (item_length - 1 - position) // 2
    return _ID_PARAMS[rank] if 0 <= rank < len(_ID_PARAMS) else None


def _is_nbi(path: str) -> bool:
    return path[:12].lower() == "/networking/"


class NbiMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: Registry,
        max_body_bytes: int,
        words: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.registry = registry
        self.max_body_bytes = max_body_bytes
        self.words = tuple(words)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or quote(scope["path"]).encode()
        problem = path_problem(raw_path) if _is_nbi(scope["path"]) else None
        path = canonical_path(self.registry, scope["path"], self.words)
        if path != scope["path"]:
            scope = {**scope, "path": path, "raw_path": quote(path).encode()}
        ids = self._id_headers(scope)
        context = RequestContext(
            request_id=ids[0][1].decode(),
            method=str(scope.get("method", "")),
            path=path,
            client_request_id=ids[1][1].decode("latin-1") if len(ids) > 1 else None,
        )
        with request_context(context):
            await self._answer(scope, receive, send, ids, problem)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        ids: list[tuple[bytes, bytes]],
        problem: InvalidInput | None,
    ) -> None:
        started = False

        async def send_with_ids(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *ids]
            await send(message)

        refused = problem or self._declared_too_large(scope)
        if refused is not None:
            await error_response(refused)(scope, receive, send_with_ids)
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
