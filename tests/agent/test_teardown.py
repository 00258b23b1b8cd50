"""``sdnc agent-teardown``: what an agent built on a host -- endpoint namespaces, its router
namespace with the bridge, VXLAN device and ruleset -- is gone afterwards, and so is its state
directory; a second teardown has nothing left to do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controller.agent.linux.dataplane import LinuxDataplane
from controller.agent.linux.plan import router_name
from controller.agent.linux.runner import Runner
from controller.agent.linux.state import StateDir
from tests.agent.netlab import Lab, Objects, new_id, sh

pytestmark = pytest.mark.dataplane("bridge", "tc", "nft")
VSID = 5301
SDNC = str(Path(sys.executable).with_name("sdnc"))


def _teardown(host: str, state: Path) -> tuple[int, str]:
    """``sdnc agent-teardown`` run in ``host``'s network namespace, as an operator would."""
    argv = ["ip", "netns", "exec", host, SDNC, "agent-teardown", "--server", "server",
            "--state-dir", str(state)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    return done.returncode, done.stdout + done.stderr


async def test_teardown_removes_what_the_agent_built_and_its_state(
    lab: Lab, tmp_path: Path
) -> None:
    if shutil.which("ip") is None:  # pragma: no cover - the dataplane marker checks tools
        pytest.fail("ip is missing")
    host, address = lab.host(lab.underlay(), 1)
    vnet, nics = new_id(), [new_id(), new_id()]
    lab.owners += nics
    objects = Objects().host(address).network("sub", vnet, VSID)
    lab.owners.append(objects.server)
    for i, nic in enumerate(nics):
        objects.endpoint(f"e{i}", nic, f"02000000090{i}", f"10.1.0.{10 + i}", vnet, VSID)
    state = tmp_path / "agent-state"
    dataplane = LinuxDataplane("server", runner=Runner(host_netns=host), state_dir=StateDir(state))
    assert await dataplane.apply(objects.objects, objects.objects, []) == []
    await dataplane.flush()
    await dataplane.close()
    router = router_name(objects.server, vnet)
    before = sh("ip", "netns", "list")
    assert router in before
    assert all(nic in before for nic in nics)
    assert (state / "objects.json").exists()
    # Something of the host that is not the agent's stays.
    sh("ip", "-n", host, "link", "add", "keepme", "type", "bridge")

    code, output = _teardown(host, state)

    assert code == 0, output
    after = sh("ip", "netns", "list")
    assert router not in after
    assert not [nic for nic in nics if nic in after]
    assert not state.exists()
    assert "keepme" in sh("ip", "-n", host, "link")
    again, output = _teardown(host, state)
    assert again == 0, output
