"""The agent messages' rules in ``controller.protocol``, which the controller enforces and the
agent's own messages keep to: types, ranges and sizes, and the code each violation gets."""

from __future__ import annotations

import orjson
import pytest

from controller import protocol


def _hello(**members: object) -> bytes:
    return protocol.encode(protocol.hello("hostA", 0) | members)


def test_a_hello_within_the_rules_is_read() -> None:
    hello = protocol.read_hello(_hello(appliedRevision=protocol.MAX_REVISION))
    assert hello.applied_revision == protocol.MAX_REVISION
    assert hello.provider_address is None
    hello = protocol.read_hello(_hello(providerAddress="fd00::11", unknownMember=[1]))
    assert hello.provider_address == "fd00::11"


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        (_hello(appliedRevision=protocol.MAX_REVISION + 1), "appliedRevision"),
        (_hello(appliedRevision=-1), "appliedRevision"),
        (_hello(appliedRevision=1.0), "appliedRevision"),
        (_hello(protocol=True), "protocol true"),
        (_hello(protocol=1.0), "protocol"),
        (_hello(server=""), "server"),
        (_hello(providerAddress="10.0.0.1%eth0"), "providerAddress"),
        (b"\xff", "not JSON"),
        (b"[" * 2000 + b"]" * 2000, "not JSON"),
    ],
)
def test_a_hello_breaking_a_rule_is_a_bad_hello(frame: bytes, fragment: str) -> None:
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.read_hello(frame)
    assert refused.value.code == protocol.BAD_HELLO
    assert fragment in str(refused.value)


def test_an_oversized_hello_is_too_large() -> None:
    frame = _hello(agent="x", padding="p" * protocol.MAX_FRAME_BYTES)
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.read_hello(frame)
    assert refused.value.code == protocol.MESSAGE_TOO_LARGE


def test_an_ack_names_the_member_that_breaks_a_rule() -> None:
    frame = protocol.encode(
        {"type": "ack", "revision": 3, "failures": [{"key": "k", "code": "c", "message": 5}]}
    )
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.read_ack(frame)
    assert refused.value.code == protocol.BAD_MESSAGE
    assert "failures.0.message" in str(refused.value)


def test_an_ack_keeps_only_the_members_of_each_failure() -> None:
    failure = {"key": "endpoint/1", "code": "Broken", "message": "m", "extra": "x" * 100}
    ack = protocol.read_ack(protocol.encode({"type": "ack", "revision": 3, "failures": [failure]}))
    assert ack.reported() == [{"key": "endpoint/1", "code": "Broken", "message": "m"}]


def test_the_agents_ack_stays_within_what_the_controller_accepts() -> None:
    # More failures than allowed, each longer than allowed, in characters that take more
    # bytes than they count: the ack the agent builds is still one the controller reads.
    failures = [
        {"key": f"endpoint/{n}" + "k" * 300, "code": "C" * 200, "message": "\u20ac\x01" * 2000}
        for n in range(protocol.MAX_FAILURES + 50)
    ]
    message = protocol.ack(7, failures)
    frame = protocol.encode(message)
    assert len(frame) <= protocol.MAX_FRAME_BYTES
    ack = protocol.read_ack(frame)
    assert ack.revision == 7
    assert 0 < len(ack.failures) <= protocol.MAX_FAILURES
    # Within the limits nothing is cut.
    small = [{"key": "endpoint/1", "code": "Broken", "message": "no route"}]
    assert orjson.loads(protocol.encode(protocol.ack(7, small)))["failures"] == small


PROBE_ID = "0b5e8c1e-2f4a-4c55-9f31-6a3d1e7b9c20"
DIP_ID = "5a7e3c92-1d48-4b6f-8a20-e7c5b9d3f164"


def test_health_is_optional_and_read_when_present() -> None:
    assert protocol.read_ack(orjson.dumps({"type": "ack", "revision": 3})).health == []
    health = [{"probe": PROBE_ID, "dip": DIP_ID, "state": "Down"}]
    ack = protocol.ack(3, [], health)
    assert protocol.ack(3) == {"type": "ack", "revision": 3, "failures": []}
    read = protocol.read_ack(orjson.dumps(ack))
    assert [(h.probe, h.dip, h.state) for h in read.health] == [(PROBE_ID, DIP_ID, "Down")]


@pytest.mark.parametrize(
    ("entry", "member"),
    [
        ({"probe": PROBE_ID.upper(), "dip": DIP_ID, "state": "Up"}, "health.0.probe"),
        ({"probe": PROBE_ID, "dip": "VM1", "state": "Up"}, "health.0.dip"),
        ({"probe": PROBE_ID, "dip": DIP_ID, "state": "Sick"}, "health.0.state"),
        ({"probe": PROBE_ID, "dip": DIP_ID}, "health.0.state"),
    ],
)
def test_a_health_report_breaking_a_rule_names_its_member(
    entry: dict[str, str], member: str
) -> None:
    frame = orjson.dumps({"type": "ack", "revision": 1, "health": [entry]})
    with pytest.raises(protocol.ProtocolError, match=member):
        protocol.read_ack(frame)


def test_health_reports_are_bounded_and_the_agent_stays_within() -> None:
    entry = {"probe": PROBE_ID, "dip": DIP_ID, "state": "Up"}
    many = [entry] * (protocol.MAX_HEALTH_REPORTS + 1)
    with pytest.raises(protocol.ProtocolError, match="health"):
        protocol.read_ack(orjson.dumps({"type": "ack", "revision": 1, "health": many}))
    assert len(protocol.read_ack(orjson.dumps(protocol.ack(1, [], many))).health) == (
        protocol.MAX_HEALTH_REPORTS
    )
