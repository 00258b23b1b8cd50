"""The state directory's record of owned namespaces: written in place by turns to two slots,
so a write cut short leaves the other one to read."""

from __future__ import annotations

import json
from pathlib import Path

from controller.agent.linux.state import NAMESPACE_SLOTS, StateDir


def test_the_newest_record_is_read_and_a_shrinking_one_stays_whole(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.save_namespaces({f"nic-{n:04d}" for n in range(50)})
    state.save_namespaces({"nic-0001", "nic-0002", "nic-0003"})
    state.save_namespaces({"nic-0002"})  # shorter than what its slot held
    assert StateDir(tmp_path).load().namespaces == {"nic-0002"}


def test_a_torn_record_leaves_the_one_before(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.save_namespaces({"nic-a"})
    state.save_namespaces({"nic-a", "nic-b"})
    written = [tmp_path / name for name in NAMESPACE_SLOTS]
    newest = max(written, key=lambda p: json.loads(p.read_text())["sequence"])
    whole = newest.read_bytes()
    newest.write_bytes(whole[: len(whole) // 2])  # cut short: not JSON
    assert StateDir(tmp_path).load().namespaces == {"nic-a"}
    record = json.loads(whole)
    record["namespaces"].append("nic-c")  # parses, but is not what was written
    newest.write_bytes(json.dumps(record).encode())
    assert StateDir(tmp_path).load().namespaces == {"nic-a"}


def test_a_restarted_agent_writes_after_the_newest_record(tmp_path: Path) -> None:
    StateDir(tmp_path).save_namespaces({"nic-a"})
    StateDir(tmp_path).save_namespaces({"nic-a", "nic-b"})  # another process, later
    StateDir(tmp_path).save_namespaces({"nic-b"})
    assert StateDir(tmp_path).load().namespaces == {"nic-b"}


def test_a_record_of_an_agent_before_the_slots_is_still_read(tmp_path: Path) -> None:
    (tmp_path / "namespaces.json").write_text(json.dumps({"namespaces": ["nic-old"]}))
    state = StateDir(tmp_path)
    assert state.load().namespaces == {"nic-old"}
    state.save_namespaces({"nic-new"})  # the agent owns what it loaded, and then forgets
    assert StateDir(tmp_path).load().namespaces == {"nic-new"}
    state.remove()
    assert not tmp_path.exists()
