"""The endpoints' part of a router's ruleset, derived from a kept assembly by the few endpoints
added and removed, equals the part assembled whole -- whatever the endpoints hold (unusable
ones, unknown ACLs, two on one slot) and whatever was assembled before."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.agent.linux import nft_ports
from controller.agent.linux.nft_ports import FilteredEndpoint, endpoints_part

ACLS = ("acl-a", "acl-b", "acl-gone")
KNOWN = frozenset({"acl-a", "acl-b"})


@st.composite
def endpoint(draw: st.DrawFn) -> FilteredEndpoint:
    number = draw(st.integers(0, 40))
    veth = draw(st.sampled_from([f"s{number:011x}", f"s{number % 7:011x}", "bad name!"]))
    address = draw(st.sampled_from([f"10.1.0.{number}", f"2001:db8::{number:x}", "10.1.0.3", "x"]))
    mac = draw(st.sampled_from([f"02:aa:00:00:00:{number:02x}", "not-a-mac"]))
    acls = tuple(draw(st.lists(st.sampled_from(ACLS), max_size=2, unique=True)))
    return FilteredEndpoint(f"endpoint/e{number}", veth, address, mac, acls)


def whole(endpoints: frozenset[FilteredEndpoint]) -> nft_ports.EndpointsPart:
    part = nft_ports._assemble(endpoints, KNOWN).part
    assert part is not None
    return part


@settings(max_examples=300, deadline=None)
@given(st.lists(endpoint(), max_size=30), st.data())
def test_a_derived_part_equals_the_part_assembled_whole(
    base: list[FilteredEndpoint], data: st.DataObject
) -> None:
    members = set(base)
    endpoints_part(members, KNOWN)  # kept, maybe derived from whatever came before
    for _ in range(data.draw(st.integers(1, 4))):
        gone = (
            data.draw(st.lists(st.sampled_from(sorted(members, key=str)), max_size=3))
            if members
            else []
        )
        came = data.draw(st.lists(endpoint(), max_size=3))
        members = (members - set(gone)) | set(came)
        assert endpoints_part(members, KNOWN) == whole(frozenset(members))


def test_adding_one_endpoint_to_a_thousand_derives_the_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    thousand = {
        FilteredEndpoint(f"endpoint/e{n}", f"s{n:011x}", f"10.1.{n // 250}.{n % 250}",
                         f"02:aa:00:00:{n // 256:02x}:{n % 256:02x}", ("acl-a",))
        for n in range(1000)
    }  # fmt: skip
    endpoints_part(thousand, KNOWN)
    new = FilteredEndpoint("endpoint/new", "snew", "10.1.9.9", "02:bb:00:00:00:01", ("acl-a",))
    expected = whole(frozenset(thousand | {new}))

    def refused(*_: object) -> None:
        raise AssertionError("assembled whole")

    monkeypatch.setattr(nft_ports, "_assemble", refused)
    assert endpoints_part(thousand | {new}, KNOWN) == expected
