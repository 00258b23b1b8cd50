"""The agent's state directory: what it applied and what it owns, so a restart resumes.

* ``objects.json``: the desired objects last applied, the server's instanceId, the NIC
  namespaces the agent created (it deletes only those and its own router namespaces) and the
  digests of the rulesets it loaded (so an unchanged ruleset is not reloaded after a restart).
* ``namespaces.0.json``, ``namespaces.1.json``: the NIC namespaces the agent owns, written
  (small, and before they are created) whenever more are about to be, to the two by turns
  (see ``save_namespaces``); ``objects.json`` is written less often.
* ``revision.json``: the revision the objects are complete up to. It is written after the
  objects, so it never claims more than they hold; a revision behind makes the controller
  resend changes the agent already has, which is harmless (changes are idempotent).

Every other file is replaced atomically (written aside, flushed, renamed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

Body = dict[str, Any]
NAMESPACE_SLOTS = ("namespaces.0.json", "namespaces.1.json")
FILES = ("objects.json", "namespaces.json", *NAMESPACE_SLOTS, "revision.json")


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
        self._sequence = 0  # of the last namespaces record written

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
        saved.namespaces |= set(_newest_slot(self.path)[1])
        legacy = _read(self.path / "namespaces.json")  # written by agents before the slots
        if isinstance(legacy, dict):
            saved.namespaces |= set(legacy.get("namespaces") or ())
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
        """Record the NIC namespaces the agent owns. An apply creating a NIC waits for this.

        Not synced to disk: the namespaces live in the kernel and die with it, so the record
        need only outlive the agent's process, which the page cache does. Not replaced by a
        rename either: replacing a file makes ext4 write its data out at once, and behind
        the fsync of ``objects.json`` (in the background) that took 40 ms at 1,000
        endpoints. So two slots are overwritten in place by turns, each record with its
        sequence number and digest: a process killed in the middle of a write leaves that
        slot torn and the other whole (one change older: the namespaces it lacks were not
        created yet, the write comes first)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self._sequence == 0:  # the first record this process writes follows the newest
            self._sequence = _newest_slot(self.path)[0]
        self._sequence += 1
        names = sorted(namespaces)
        record = orjson.dumps({"sequence": self._sequence, "namespaces": names,
                               "digest": _digest(names)})  # fmt: skip
        slot = self.path / NAMESPACE_SLOTS[self._sequence % 2]
        descriptor = os.open(slot, os.O_RDWR | os.O_CREAT, 0o600)
        try:  # padded to the slot's length: never truncated (JSON allows trailing spaces)
            os.pwrite(descriptor, record.ljust(os.fstat(descriptor).st_size), 0)
        finally:
            os.close(descriptor)
        (self.path / "namespaces.json").unlink(missing_ok=True)  # an older agent's record

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


def _newest_slot(path: Path) -> tuple[int, list[str]]:
    """The sequence number and namespaces of the newest whole namespaces record (0, []:
    none)."""
    newest: tuple[int, list[str]] = (0, [])
    for name in NAMESPACE_SLOTS:
        record = _read(path / name)
        if not isinstance(record, dict) or not isinstance(record.get("sequence"), int):
            continue
        names = record.get("namespaces")
        if not isinstance(names, list) or record.get("digest") != _digest(names):
            continue  # torn: its write was cut short
        if record["sequence"] > newest[0]:
            newest = (record["sequence"], [str(n) for n in names])
    return newest


def _digest(names: list[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
