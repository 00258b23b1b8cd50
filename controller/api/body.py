"""Reading a request body: media type, size (enforced by the middleware), JSON, depth.

Every way a body can be wrong ends in a 4xx error envelope; nothing a client sends reaches
the database as a string PostgreSQL cannot store (NUL characters).
"""

from __future__ import annotations

import codecs

import orjson
from starlette.requests import Request

from controller.errors import InvalidInput, InvalidJson, UnsupportedMediaType

_JSON_TYPES = frozenset({"application/json", "text/json"})


async def read_json(request: Request, *, max_depth: int) -> object:
    raw = await request.body()
    text = _decode(raw, request.headers.get("content-type"))
    if not text.strip():
        raise InvalidJson("the request body is empty; send the resource as a JSON object")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidJson("the request body must be a JSON object (the resource envelope)")
    check_structure(data, max_depth)
    return data


def _decode(raw: bytes, content_type: str | None) -> str:
    media, _, params = (content_type or "").partition(";")
    media = media.strip().lower()
    if media not in _JSON_TYPES and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the body as application/json (got '{content_type or 'no Content-Type'}')"
        )
    charset = "utf-8"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    try:
        codec = codecs.lookup(charset)
    except LookupError:
        raise UnsupportedMediaType(f"unknown charset '{charset}'") from None
    try:
        # utf-8-sig also drops the byte order mark Windows tools like to prepend.
        return raw.decode("utf-8-sig" if codec.name == "utf-8" else codec.name)
    except UnicodeDecodeError:
        raise InvalidJson(f"the request body is not valid {codec.name}") from None


def check_structure(data: object, max_depth: int) -> None:
    """Refuse nesting deeper than ``max_depth`` and strings with NUL characters."""
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            _check_depth(depth, max_depth)
            for key, item in value.items():
                _check_text(key)
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            _check_depth(depth, max_depth)
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_text(value)


def _check_depth(depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise InvalidInput(f"the JSON body is nested deeper than {max_depth} levels")


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise InvalidInput("strings in the body must not contain NUL characters")
