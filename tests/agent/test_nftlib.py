"""nftables through libnftables in-process (the runner's ``nft``) does what the tool does: a
script loads as one transaction in the namespace asked for, a refused one raises with nft's
complaint, and the stateless listing is ``nft -s list ruleset``'s, counters' values left out."""

from __future__ import annotations

import pytest

from controller.agent.linux import nftlib
from controller.agent.linux.runner import CommandError, Runner
from tests.agent.netlab import Lab, sh

pytestmark = pytest.mark.dataplane("nft")

SCRIPT = """table inet probe {
chain forward {
type filter hook forward priority filter; policy accept;
tcp dport 80 counter packets 5 bytes 300 drop
}
}
"""


async def test_in_process_nft_loads_and_lists_as_the_tool_does(lab: Lab) -> None:
    assert nftlib.available()
    inside, other = lab.namespace("nft"), lab.namespace("other")
    runner = Runner()
    await runner.nft(inside, SCRIPT)
    assert (runner.commands, runner.transactions) == (0, 1), "no process was started"
    listed = await runner.nft(inside, "list ruleset", stateless=True)
    assert listed == sh("ip", "netns", "exec", inside, "nft", "-s", "list", "ruleset")
    assert "counter drop" in listed
    assert "packets 5" not in listed
    assert "packets 5" in await runner.nft(inside, "list ruleset")
    assert await runner.nft(other, "list ruleset") == "", "only the namespace asked for"
    with pytest.raises(CommandError, match="No such file or directory"):
        await runner.nft(inside, "delete table inet absent")
    with pytest.raises(CommandError):
        await runner.nft("sdnc-no-such-namespace", "list ruleset")
