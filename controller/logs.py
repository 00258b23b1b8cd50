"""Logging of the ``sdnc`` processes: plain text lines, or (``SDNC_LOG_FORMAT=json``) one JSON
object per line carrying the request id and resource path of the request that caused it.

The HTTP middleware puts the request's identity in ``REQUEST`` for as long as the request is
answered; every log line emitted meanwhile in its task (the service's, the store's, the web
server's access line) is stamped with it, because handlers format in the caller's context.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    method: str
    path: str
    client_request_id: str | None = None


REQUEST: ContextVar[RequestContext | None] = ContextVar("sdnc_request", default=None)


@contextlib.contextmanager
def request_context(context: RequestContext) -> Iterator[None]:
    """Stamp the log lines emitted inside with ``context``."""
    token = REQUEST.set(context)
    try:
        yield
    finally:
        REQUEST.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the request's
    ``requestId``, ``method`` and ``path`` when a request caused it, ``exception`` when the
    record carries one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request = REQUEST.get()
        if request is not None:
            line["requestId"] = request.request_id
            line["method"] = request.method
            line["path"] = request.path
            if request.client_request_id is not None:
                line["clientRequestId"] = request.client_request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level: str, log_format: LogFormat = "text") -> None:
    """Send every record of ``level`` and above to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for previous in list(root.handlers):
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level.upper())
