"""The history checks of the chaos tests find what they are meant to find, on histories
written by hand: a lost acknowledged write, a state nobody wrote, two writes winning on one
etag, a chain with a gap, an order that contradicts real time."""

from __future__ import annotations

import pytest

from tests.support.history import Final, Op, etag_chain, lost_writes


def put(marker: str, invoked: float, completed: float, *, status: int | None = 200) -> Op:
    etag = f"etag-{marker}" if status is not None and status < 300 else None
    op = Op(0, "PUT", "/k", marker=marker, invoked=invoked, completed=completed, status=status)
    op.etag = etag
    return op


def delete(invoked: float, completed: float, status: int | None = 200) -> Op:
    return Op(0, "DELETE", "/k", invoked=invoked, completed=completed, status=status)


def shows(marker: str, etag: str | None = None) -> Final:
    return Final(etag or f"etag-{marker}", marker)


def test_a_write_acknowledged_after_the_visible_one_is_lost() -> None:
    history = [put("a", 0, 1), put("b", 2, 3)]
    assert lost_writes(history, shows("b")) == []
    assert len(lost_writes(history, shows("a"))) == 1


def test_concurrent_writes_may_land_in_either_order() -> None:
    history = [put("a", 0, 2), put("b", 1, 3)]
    assert lost_writes(history, shows("a")) == []
    assert lost_writes(history, shows("b")) == []


def test_an_acknowledged_delete_after_the_visible_write_is_lost() -> None:
    history = [put("a", 0, 1), delete(2, 3)]
    assert len(lost_writes(history, shows("a"))) == 1
    assert lost_writes(history, Final()) == []
    assert len(lost_writes([put("a", 0, 1)], Final())) == 1


def test_an_indeterminate_write_may_be_the_visible_one_until_its_loss_was_seen() -> None:
    history = [put("a", 0, 1), put("c", 2, 5, status=None), put("b", 3, 4), put("d", 6, 7)]
    # c was applied (its state shows, under an etag nobody was told): b may precede it...
    assert lost_writes(history[:3], shows("c", "etag-unknown")) == []
    # ...but d was sent after c's connection was lost, so it comes after c.
    assert len(lost_writes(history, shows("c", "etag-unknown"))) == 1


def test_a_state_nobody_wrote_or_under_another_etag_is_reported() -> None:
    history = [put("a", 0, 1)]
    assert "written by no request" in lost_writes(history, shows("x"))[0]
    assert "shows etag" in lost_writes(history, shows("a", "etag-other"))[0]


def conditional(marker: str, if_match: str, invoked: float, completed: float) -> Op:
    op = put(marker, invoked, completed)
    op.if_match = if_match
    return op


def test_the_etag_chain_orders_acknowledged_conditional_writes() -> None:
    chain = [conditional("b", "etag-a", 2, 3), conditional("c", "etag-b", 4, 5)]
    assert [op.marker for op in etag_chain(reversed(chain), "etag-a")] == ["b", "c"]


@pytest.mark.parametrize(
    ("history", "complaint"),
    [
        ([conditional("b", "etag-a", 0, 1), conditional("c", "etag-a", 0, 1)], "two won"),
        ([conditional("b", "etag-a", 0, 1), conditional("d", "etag-c", 2, 3)], "outside"),
        ([conditional("b", "etag-a", 5, 6), conditional("c", "etag-b", 0, 1)], "had finished"),
    ],
    ids=["two winners", "a gap", "against real time"],
)
def test_the_etag_chain_finds_what_breaks_it(history: list[Op], complaint: str) -> None:
    with pytest.raises(AssertionError, match=complaint):
        etag_chain(history, "etag-a")
