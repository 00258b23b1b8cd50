"""What the ``ip``/``bridge``/``tc`` tools print, read (pure): their ``-j -batch`` output (JSON
documents one after the other) and the lines a ``-force -batch`` run failed on."""

from __future__ import annotations

import json
import re
from typing import Any

_FAILED_LINE = re.compile(r"^Command failed -:(\d+)\s*$")


def documents(text: str) -> list[Any]:
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return documents
        document, position = decoder.raw_decode(text, position)
        documents.append(document)


def failed_lines(stderr: str) -> dict[int, str]:
    """``-force`` batches print the tool's complaint, then ``Command failed -:LINE``."""
    failed: dict[int, str] = {}
    pending: list[str] = []
    for line in stderr.splitlines():
        match = _FAILED_LINE.match(line)
        if match is None:
            pending.append(line.strip())
            continue
        failed[int(match.group(1)) - 1] = "; ".join(p for p in pending if p) or "failed"
        pending = []
    return failed
