"""The agent's state directory: what it applied and what it owns, so a restart resumes.

* ``objects.json``: the desired objects last applied, the server's instanceId, the NIC
  namespaces the agent created (it deletes only those and its own router namespaces) and the
  digests of the rulesets it loaded (so an unchanged ruleset is not reloaded after a restart).
* ``namespaces.json``: the NIC namespaces the agent owns, written (small, and before they are
  created) whenever more are about to be; ``objects.json`` is written less often.
* ``revision.json``: the revision the objects are complete up to. It is written after the
  objects, so it never claims more than they hold; a revision behind makes the controller
  resend changes the agent already has, which is harmless (changes are idempotent).

Every file is replaced atomically (written aside, flushed, renamed).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

Body = dict[str, Any]
FILES = ("objects.json", "namespaces.json", "revision.json")


@dataclass
class Saved:
    applied_revision: int = 0
    objects: dict[str, Body] = field(default_factory=dict)
    server_id: str | None = None
    namespaces: set[str] = field(default_factory=set)
    rulesets: dict[str, tuple[str, str]] = field(default_factory=dict)


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Saved:
        saved = Saved()
        data = _read(self.path / "objects.json")
        if isinstance(data, dict):
            saved.objects = dict(data.get("objects") or {})
            saved.server_id = data.get("serverId") or None
            saved.namespaces = set(data.get("namespaces") or ())
            saved.rulesets = {
                str(k): (str(v[0]), str(v[1])) for k, v in (data.get("rulesets") or {}).items()
            }
        owned = _read(self.path / "namespaces.json")
        if isinstance(owned, dict):
            saved.namespaces |= set(owned.get("namespaces") or ())
        revision = _read(self.path / "revision.json")
        if isinstance(revision, dict) and isinstance(revision.get("appliedRevision"), int):
            saved.applied_revision = revision["appliedRevision"]
        return saved

    def save_objects(
        self,
        objects: dict[str, Body],
        server_id: str | None,
        namespaces: set[str],
        rulesets: dict[str, tuple[str, str]],
    ) -> None:
        document = {
            "objects": objects,
            "serverId": server_id,
            "namespaces": sorted(namespaces),
            "rulesets": {k: list(v) for k, v in sorted(rulesets.items())},
        }
        self._write("objects.json", document)

    def save_namespaces(self, namespaces: set[str]) -> None:
        # Not synced to disk (an apply creating a NIC waits for this write): the namespaces
        # live in the kernel and die with it, so the record need only outlive the agent's
        # process, which the page cache does; the rename keeps it whole.
        self._write("namespaces.json", {"namespaces": sorted(namespaces)}, durable=False)

    def save_revision(self, revision: int) -> None:
        self._write("revision.json", {"appliedRevision": revision})

    def remove(self) -> None:
        """Forget everything (the agent tore down what it built): the files, then the
        directory if nothing else is in it."""
        for name in FILES:
            for path in (self.path / name, (self.path / name).with_suffix(".tmp")):
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.path.rmdir()

    def _write(self, name: str, document: object, *, durable: bool = True) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / name
        aside = target.with_suffix(".tmp")
        # orjson: json.dump streams through Python code, about 8 ms for the objects of a host of
        # a thousand endpoints -- holding the interpreter while an apply waits for it.
        with aside.open("wb") as handle:
            handle.write(orjson.dumps(document))
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        aside.replace(target)


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
