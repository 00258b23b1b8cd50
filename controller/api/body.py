"""Reading a request body: media type, charset, size (enforced by the middleware), JSON, depth.

Every way a body can be wrong ends in a 4xx error envelope; nothing a client sends reaches
the database as a string PostgreSQL cannot store (NUL characters), and no JSON object with a
member named twice is read as if one of them had not been sent.
"""

from __future__ import annotations

import codecs
import json

import orjson
from starlette.requests import Request

from controller.errors import InvalidInput, InvalidJson, UnsupportedMediaType

_JSON_TYPES = frozenset({"application/json", "text/json"})
# Codecs Python calls text encodings that are no charset: they transform text (escapes, IDNA,
# punycode) or refuse everything ("undefined"). Binary transforms (hex, base64, zlib, rot13)
# are refused by bytes.decode itself.
_NOT_CHARSETS = frozenset({"idna", "punycode", "raw-unicode-escape", "unicode-escape", "undefined"})


async def read_json(request: Request, *, max_depth: int) -> object:
    raw = await request.body()
    # No body at all is a missing resource, not a wrong media type: 400, whatever the header.
    if not raw.strip():
        raise InvalidJson("the request body is empty; send the resource as a JSON object")
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
    # Only now, with the depth known to be small, may the recursive stdlib parser read it.
    duplicate = find_duplicate_member(text)
    if duplicate is not None:
        raise InvalidInput(
            f"the member '{duplicate.rpartition('/')[2]}' appears more than once in one "
            "object; send it once",
            target=_resource_of(request.url.path) + duplicate,
        )
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
    except (LookupError, ValueError):
        raise UnsupportedMediaType(f"unknown charset '{charset}'") from None
    name = codec.name.replace("_", "-")
    if name in _NOT_CHARSETS:
        raise UnsupportedMediaType(f"'{charset}' is not a charset; send UTF-8")
    try:
        # utf-8-sig also drops the byte order mark Windows tools like to prepend.
        return raw.decode("utf-8-sig" if name == "utf-8" else codec.name)
    except LookupError:
        raise UnsupportedMediaType(
            f"'{charset}' is not a charset; send the body as UTF-8"
        ) from None
    except (UnicodeError, ValueError):
        raise InvalidJson(f"the request body is not valid {codec.name}") from None


class _Duplicate:
    """Where a duplicate member is, built up from the inside out as the parser returns."""

    def __init__(self, path: str) -> None:
        self.path = path


def _resource_of(path: str) -> str:
    """The resource a request path names (``/networking/v1/virtualNetworks/v`` ->
    ``/virtualNetworks/v``): targets start with it, as every error's target does."""
    parts = path.split("/", 3)
    return "/" + parts[3] if len(parts) == 4 and parts[1] == "networking" else ""


def find_duplicate_member(text: str) -> str | None:
    """The JSON pointer (``/properties/aclRules/3/properties/priority``) of the first member an
    object of ``text`` names twice, or None. orjson, like most parsers, keeps the last value
    silently; the stdlib parser hands every object's members over as a list, which shows them."""
    found = False

    def pairs(members: list[tuple[str, object]]) -> _Duplicate | None:
        nonlocal found
        if found:
            for name, value in members:
                inner = _locate(value)
                if inner is not None:
                    return _Duplicate(name + inner)
        if len({name for name, _ in members}) != len(members):
            found = True
            seen: set[str] = set()
            for name, _ in members:
                if name in seen:
                    return _Duplicate(name)
                seen.add(name)
        # The values are not needed: orjson already built the body.
        return None

    try:
        parsed = json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        raise InvalidJson("the request body is not valid JSON") from None
    return _locate(parsed)


def _locate(value: object) -> str | None:
    if isinstance(value, _Duplicate):
        return "/" + value.path
    if isinstance(value, list):
        for index, item in enumerate(value):
            inner = _locate(item)
            if inner is not None:
                return f"/{index}{inner}"
    return None


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
