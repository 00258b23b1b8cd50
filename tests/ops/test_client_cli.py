"""The client commands against a controller running as ``sdnc serve`` runs it, over a real
socket: ``sdnc get``, ``apply``, ``delete``, configured by ``SDNC_URL`` / ``SDNC_TOKEN``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from tests.support.cli import sdnc
from tests.support.server import ControllerServer, running_controller

pytestmark = pytest.mark.slow

PROVIDER = {
    "resourceRef": "/logicalNetworks/HNVPA",
    "properties": {
        "networkVirtualizationEnabled": True,
        "subnets": [{"resourceId": "PA", "properties": {"addressPrefix": "198.18.0.0/24"}}],
    },
}
VNET_YAML = """\
resourceRef: /virtualNetworks/contoso
properties:
  addressSpace: {addressPrefixes: [192.0.2.0/24]}
  logicalNetwork: {resourceRef: /logicalNetworks/HNVPA}
  subnets:
    - resourceId: web
      properties: {addressPrefix: 192.0.2.0/25}
---
resourceRef: /macPools/default
properties: {startMacAddress: 00-1D-D8-B7-1C-00, endMacAddress: 00-1D-D8-B7-1F-FF}
"""
NIC = {
    "resourceRef": "/networkInterfaces/vm1",
    "properties": {
        "ipConfigurations": [
            {
                "resourceId": "ip",
                "properties": {"subnet": {"resourceRef": "/virtualNetworks/contoso/subnets/web"}},
            }
        ]
    },
}


@pytest.fixture
def controller(database_url: str) -> Iterator[ControllerServer]:
    with running_controller(database_url) as server:
        yield server


def _tree(root: Path) -> Path:
    """Files named so that name order is the wrong order: the NIC needs the virtual
    network, which needs the provider network."""
    (root / "nested").mkdir()
    (root / "1-nic.json").write_text(json.dumps(NIC))
    (root / "nested" / "2-vnet.yaml").write_text(VNET_YAML)
    (root / "3-provider.json").write_text(json.dumps(PROVIDER))
    (root / "README.txt").write_text("not a resource")
    return root


def test_apply_a_directory_in_any_order_then_get_it_back(
    controller: ControllerServer, tmp_path: Path
) -> None:
    base = controller.base_url
    applied = sdnc(base, "apply", "-f", str(_tree(tmp_path)))
    assert applied.code == 0, applied.stdout + applied.stderr
    lines = applied.stdout.splitlines()
    assert sorted(lines) == sorted(
        [
            "created /logicalNetworks/HNVPA",
            "created /virtualNetworks/contoso",
            "created /macPools/default",
            "created /networkInterfaces/vm1",
        ]
    )
    assert lines[-1] == "created /networkInterfaces/vm1"  # retried after what it refers to

    again = sdnc(base, "apply", "-f", str(tmp_path))
    assert again.code == 0
    assert {line.split()[0] for line in again.stdout.splitlines()} == {"replaced"}

    listed = sdnc(base, "get", "VirtualNetworks")
    assert listed.code == 0
    header, row = listed.stdout.splitlines()
    assert header.split() == [
        "NAME",
        "PROVISIONING",
        "CONFIGURATION",
        "ADDRESS",
        "SPACE",
        "SUBNETS",
    ]
    assert row.split() == ["contoso", "Succeeded", "-", "192.0.2.0/24", "web=192.0.2.0/25"]

    nic = json.loads(sdnc(base, "get", "nic", "vm1", "-o", "json").stdout)
    assert nic["resourceRef"] == "/networkInterfaces/vm1"
    address = nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"]
    wide = sdnc(base, "get", "nic", "-o", "wide").stdout
    assert nic["instanceId"] in wide
    assert address in wide
    assert nic["etag"] in wide

    as_yaml = yaml.safe_load(sdnc(base, "get", "ln", "HNVPA", "-o", "yaml").stdout)
    assert as_yaml["properties"]["subnets"][0]["properties"]["addressPrefix"] == "198.18.0.0/24"

    # What get prints, apply takes back (a list, from standard input).
    everything = sdnc(base, "get", "networkInterfaces", "-o", "json").stdout
    assert [nic["resourceRef"] for nic in json.loads(everything)["value"]] == [
        "/networkInterfaces/vm1"
    ]
    back = sdnc(base, "apply", "-f", "-", stdin=sdnc(base, "get", "vnet", "-o", "json").stdout)
    assert back.stdout.strip() == "replaced /virtualNetworks/contoso"

    child = sdnc(base, "get", "vnet", "contoso/subnets/web", "-o", "json")
    assert json.loads(child.stdout)["resourceRef"] == "/virtualNetworks/contoso/subnets/web"


def test_if_match_delete_and_errors_the_operator_can_read(
    controller: ControllerServer, tmp_path: Path
) -> None:
    base = controller.base_url
    provider = tmp_path / "provider.json"
    provider.write_text(json.dumps(PROVIDER))
    assert sdnc(base, "apply", "-f", str(provider)).code == 0
    etag = json.loads(sdnc(base, "get", "ln", "HNVPA", "-o", "json").stdout)["etag"]

    stale = sdnc(base, "apply", "-f", str(provider), "--if-match", 'W/"stale"')
    assert stale.code == 1
    assert "412 PreconditionFailed" in stale.stdout
    fresh = sdnc(base, "apply", "-f", str(provider), "--if-match", etag)
    assert fresh.stdout.strip() == "replaced /logicalNetworks/HNVPA"

    invalid = tmp_path / "invalid.json"
    invalid.write_text(
        json.dumps({"resourceRef": "/macPools/m", "properties": {"startMacAddress": 5}})
    )
    refused = sdnc(base, "apply", "-f", str(invalid))
    assert refused.code == 1
    assert "error /macPools/m" in refused.stdout
    assert "400 InvalidInput" in refused.stdout
    assert "(target: " in refused.stdout

    nowhere = tmp_path / "nowhere.json"
    nowhere.write_text(json.dumps({"properties": {}}))
    unplaced = sdnc(base, "apply", "-f", str(nowhere))
    assert unplaced.code == 2
    assert "no resourceRef" in unplaced.stderr
    both = sdnc(base, "apply", "-f", str(provider), "-f", str(invalid), "--if-match", etag)
    assert both.code == 2
    assert "--if-match" in both.stderr

    assert sdnc(base, "delete", "ln", "HNVPA").stdout.strip() == "deleted /logicalNetworks/HNVPA"
    gone = sdnc(base, "get", "ln", "HNVPA")
    assert gone.code == 1
    assert "404 NotFound" in gone.stderr
    unknown = sdnc(base, "get", "widgets")
    assert unknown.code == 2
    assert "unknown kind 'widgets'" in unknown.stderr


def test_an_unreachable_controller_is_one_line(controller: ControllerServer) -> None:
    closed = "http://127.0.0.1:9"  # discard: nothing listens
    outcome = sdnc(closed, "get", "servers")
    assert outcome.code == 1
    assert outcome.stderr.startswith(f"error: cannot reach the controller at {closed}")
    assert "SDNC_URL" in outcome.stderr


def test_the_token_goes_as_a_bearer_credential() -> None:
    """SDNC_TOKEN is sent as ``Authorization: Bearer``, so the commands work once the API
    requires a credential (a stand-in server records what it is sent)."""
    seen: list[str | None] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            body = b'{"value": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert sdnc(base, "get", "servers", token="s3cret").stdout.strip() == "no servers"
        assert sdnc(base, "get", "servers").code == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert seen == ["Bearer s3cret", None]


def test_the_installed_command_reads_sdnc_url(controller: ControllerServer) -> None:
    env = {**os.environ, "SDNC_URL": controller.base_url}
    result = subprocess.run(
        [sys.executable, "-m", "controller", "get", "servers", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"value": []}
