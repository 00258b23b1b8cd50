"""An agent whose credential the controller refuses (HTTP 403) is told plainly, on both sides,
at WARNING: the agent says the credential is the problem and how to get the right one, the
controller names the server and why it refused, once, not at every retry."""

from __future__ import annotations

import logging

import pytest

from tests.support.southbound import Agents, Fabric, InProcessController, eventually

WRONG = "A" * 43  # the shape of a token, but no server's


async def test_a_wrong_token_is_a_warning_on_both_sides(
    controller: InProcessController,
    agents: Agents,
    fabric: Fabric,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    agent = agents.start("hostA", WRONG)
    await eventually(lambda: agent.stats.refusals >= 3, what="three refused attempts")
    assert not agent.connected.is_set()

    on_agent = [r for r in caplog.records if r.name == "controller.agent.session"]
    assert len(on_agent) == 1, [r.getMessage() for r in on_agent]  # not one per retry
    said = on_agent[0].getMessage()
    assert on_agent[0].levelno == logging.WARNING
    assert "refuses this agent's credential (HTTP 403)" in said
    assert "sdnc agent-token hostA" in said

    on_controller = [r for r in caplog.records if r.name == "controller.southbound.channel"]
    assert len(on_controller) == 1, [r.getMessage() for r in on_controller]
    said = on_controller[0].getMessage()
    assert on_controller[0].levelno == logging.WARNING
    assert "'hostA'" in said
    assert "its token is not this server's" in said
    assert WRONG not in said  # a credential is never logged


async def test_each_reason_is_named(
    controller: InProcessController,
    agents: Agents,
    fabric: Fabric,
    agent_tokens: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="controller.southbound.channel")
    unknown = agents.start("no-such-host", agent_tokens["hostA"])
    empty = agents.start("hostB", "")
    await eventually(
        lambda: unknown.stats.refusals >= 1 and empty.stats.refusals >= 1,
        what="both refused",
    )
    said = " ".join(
        r.getMessage() for r in caplog.records if r.name == "controller.southbound.channel"
    )
    assert "'no-such-host' (HTTP 403): there is no such server" in said
    assert "'hostB' (HTTP 403): it sent no bearer token" in said
