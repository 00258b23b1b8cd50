"""What ``sdnc apply -f`` reads: JSON or YAML files (or standard input) holding resources as
the API renders them -- one resource, a ``{"value": [...]}`` list as ``sdnc get KIND -o json``
prints it, a JSON array, or several YAML documents -- each placed by its ``resourceRef``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SUFFIXES = (".json", ".yaml", ".yml")
STDIN = "-"


class DocumentError(ValueError):
    """A file that holds no resource the client can place."""


@dataclass(frozen=True)
class Document:
    source: str  # the file (and position in it) it came from, for messages
    ref: str  # where it is PUT: its resourceRef
    body: dict[str, Any]


def files(sources: list[str]) -> list[str]:
    """The files to read: each FILE as given, the JSON and YAML files in each DIR (and its
    subdirectories) in name order, ``-`` for standard input."""
    found: list[str] = []
    for source in sources:
        path = Path(source)
        if source == STDIN:
            found.append(STDIN)
        elif path.is_dir():
            inside = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()
            )
            if not inside:
                raise DocumentError(f"{source}: no .json, .yaml or .yml file in this directory")
            found.extend(str(p) for p in inside)
        elif path.is_file():
            found.append(source)
        else:
            raise DocumentError(f"{source}: no such file or directory")
    return found


def parse(source: str, text: str) -> list[Document]:
    """The resources ``text`` (read from ``source``) holds."""
    try:
        loaded: list[Any] = [json.loads(text)]
    except ValueError as exc:
        if source.lower().endswith(".json"):
            raise DocumentError(f"{source}: not JSON ({exc})") from exc
        try:
            loaded = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            raise DocumentError(f"{source}: neither JSON nor YAML ({_first_line(exc)})") from exc
    items: list[Any] = []
    for document in loaded:
        if isinstance(document, dict) and isinstance(document.get("value"), list):
            items.extend(document["value"])
        elif isinstance(document, list):
            items.extend(document)
        else:
            items.append(document)
    if not items:
        raise DocumentError(f"{source}: holds no resource")
    many = len(items) > 1
    return [_document(f"{source}[{i}]" if many else source, item) for i, item in enumerate(items)]


def _document(source: str, item: Any) -> Document:
    if not isinstance(item, dict):
        raise DocumentError(f"{source}: a resource is a JSON object, not {type(item).__name__}")
    ref = item.get("resourceRef")
    if not isinstance(ref, str) or not ref.startswith("/") or ref.strip("/") == "":
        raise DocumentError(
            f"{source}: no resourceRef saying where the resource goes "
            '(e.g. "resourceRef": "/virtualNetworks/contoso")'
        )
    return Document(source, ref, item)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
