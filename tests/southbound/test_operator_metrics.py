"""The agent-side metrics of ``GET /metrics``: connected agents, their applied-revision lag as
one bounded histogram, acks, failing objects, and ``?wait=applied`` waits and timeouts --
with real agent sessions on a controller served over a real socket."""

from __future__ import annotations

from tests.support.bodies import acl, acl_rule
from tests.support.metrics import Scrape, scrape_async
from tests.support.nbi import url
from tests.support.southbound import (
    HOSTS,
    WEB_ACL,
    Agents,
    Fabric,
    InProcessController,
    RecordingDataplane,
    eventually,
    put_waiting,
)


async def test_agents_acks_lag_failures_and_waits(
    controller: InProcessController,
    agents: Agents,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    stuck = RecordingDataplane()  # hostC: stops applying once connected
    for host in HOSTS[:2]:
        agents.start(host, agent_tokens[host])
    agents.start("hostC", agent_tokens["hostC"], dataplane=stuck)

    async def connected() -> bool:
        return (await scrape_async(controller.http)).value("sdnc_agents_connected") == 3

    await eventually(connected, what="three agents counted as connected")
    stuck.gate.clear()

    # Applied on hostA (the ACL's only host) in time.
    applied = await put_waiting(controller.http, WEB_ACL, acl(acl_rule("r1", 101)), within=20)
    assert applied.headers["x-sdnc-applied"] == "true", applied.text
    # A NIC on hostC, which is stuck: the wait times out.
    timed_out = await controller.http.put(
        url("/networkInterfaces/c1/ipConfigurations/ip") + "?wait=applied&timeout=0.5",
        json={
            "properties": {
                "privateIPAddress": "10.1.1.31",
                "subnet": {"resourceRef": "/virtualNetworks/red/subnets/db"},
            }
        },
    )
    assert timed_out.status_code == 200, timed_out.text
    assert timed_out.headers["x-sdnc-applied"] == "false"

    metrics = await scrape_async(controller.http)
    assert metrics.value("sdnc_wait_applied_total", outcome="applied") == 1
    assert metrics.value("sdnc_wait_applied_total", outcome="timeout") == 1
    assert metrics.value("sdnc_wait_applied_seconds_count") == 2
    assert metrics.value("sdnc_agent_acks_total") >= 2
    # One series per bucket, however many hosts: hostC lags, the others do not (much).
    lag = metrics.series("sdnc_agent_applied_lag_revisions_bucket")
    assert len(lag) == 13
    assert metrics.value("sdnc_agent_applied_lag_revisions_bucket", le="+Inf") == 3
    assert metrics.value("sdnc_agent_applied_lag_revisions_bucket", le="0") <= 2
    assert metrics.value("sdnc_agent_applied_lag_revisions_gsum") >= 1
    assert metrics.types["sdnc_agent_applied_lag_revisions"] == "histogram"

    stuck.gate.set()

    async def caught_up() -> bool:
        scraped: Scrape = await scrape_async(controller.http)
        return scraped.value("sdnc_agent_applied_lag_revisions_gsum") == 0 or (
            scraped.value("sdnc_agent_applied_lag_revisions_bucket", le="0") == 3
        )

    await eventually(caught_up, what="every agent applied what was compiled")


async def test_failing_objects_are_counted(
    controller: InProcessController,
    agents: Agents,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    failing = RecordingDataplane(fail=lambda key: key.startswith("endpoint/"))
    failing.gate.set()
    agents.start("hostB", agent_tokens["hostB"], dataplane=failing)

    async def reported() -> bool:
        scraped = await scrape_async(controller.http)
        return scraped.value("sdnc_agent_failing_objects") >= 1

    await eventually(reported, what="hostB's failing endpoint counted")
    metrics = await scrape_async(controller.http)
    assert metrics.value("sdnc_agents_failing") == 1
