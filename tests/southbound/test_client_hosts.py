"""``sdnc hosts``, ``sdnc describe nic`` and ``sdnc apply --wait`` with real agent sessions
connected to a controller served over a real socket (the commands run in a thread: the
controller and the agents run in this test's event loop)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.support.cli import Outcome, sdnc
from tests.support.southbound import (
    Agents,
    Fabric,
    InProcessController,
    RecordingDataplane,
    eventually,
    status_written,
)


async def _sdnc(controller: InProcessController, *args: str) -> Outcome:
    return await asyncio.to_thread(sdnc, controller.base_url, *args)


async def test_hosts_and_describe_show_connections_lag_and_failures(
    controller: InProcessController,
    agents: Agents,
    fabric: Fabric,
    agent_tokens: dict[str, str],
) -> None:
    agents.start("hostA", agent_tokens["hostA"], provider_address="198.18.0.11")
    failing = RecordingDataplane(fail=lambda key: key.startswith("endpoint/"))
    agents.start("hostB", agent_tokens["hostB"], dataplane=failing)

    async def reported() -> bool:
        await status_written(controller.base_url)
        hosts = json.loads((await _sdnc(controller, "hosts", "-o", "json")).stdout)
        by_ref = {host["resourceRef"]: host for host in hosts["value"]}
        return (
            by_ref["/servers/hostA"]["lag"] == 0 and by_ref["/servers/hostB"]["failingObjects"] == 1
        )

    await eventually(reported, what="both agents' reports in the hosts view")

    table = await _sdnc(controller, "hosts")
    assert table.code == 0, table.stderr
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines()[2:]}
    assert table.stdout.splitlines()[1].split()[:7] == [
        "SERVER",
        "CONNECTED",
        "REPLICA",
        "APPLIED",
        "LAG",
        "FAILING",
        "PROVIDER",
    ]
    replica = controller.southbound.replica
    assert rows["/servers/hostA"][1:3] == ["yes", replica]
    assert rows["/servers/hostA"][4:7] == ["0", "0", "198.18.0.11"]
    assert rows["/servers/hostB"][1] == "yes"
    assert rows["/servers/hostB"][5] == "1"
    assert rows["/servers/hostC"][1:7] == ["no", "-", "-", "-", "0", "-"]

    described = await _sdnc(controller, "describe", "nic", "b1")
    assert described.code == 0, described.stderr
    text = described.stdout
    assert "Configuration:  Failure" in text
    assert "PolicyConfigurationFailure" in text
    assert "Server:         /servers/hostB" in text
    assert "24.30.1.20" in text  # its endpoint's address

    offline = await _sdnc(controller, "describe", "nic", "c1")
    assert "HostNotConnectedToController" in offline.stdout


async def test_apply_waits_until_the_hosts_applied(
    controller: InProcessController,
    agents: Agents,
    fabric: Fabric,
    agent_tokens: dict[str, str],
    tmp_path: Path,
) -> None:
    agent = agents.start("hostA", agent_tokens["hostA"])
    await eventually(lambda: agent.connected.is_set(), what="hostA connected")
    document = tmp_path / "acl.json"
    nic = json.loads((await _sdnc(controller, "get", "nic", "a1", "-o", "json")).stdout)
    nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] = "24.30.1.11"
    document.write_text(json.dumps(nic))
    outcome = await _sdnc(controller, "apply", "-f", str(document), "--wait", "--timeout", "20")
    assert outcome.code == 0, outcome.stderr
    assert outcome.stdout.strip() == "replaced /networkInterfaces/a1 (applied)"
