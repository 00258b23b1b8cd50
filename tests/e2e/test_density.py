"""A host at container density, end to end: 250 endpoints behind one ACL on one host (real
agent, real kernel, controller on PostgreSQL over TLS), then new endpoints placed on that host
must answer pings soon after their PUT.

The time from the PUT to the first ping is printed as a figure, never asserted on (a loaded
machine must not fail the run); the bound only catches an endpoint that never comes up.
"""

from __future__ import annotations

import statistics
import time

from tests.e2e.conftest import Deployment
from tests.e2e.fabric import Endpoint
from tests.e2e.netns import namespaces
from tests.e2e.probes import first_ping
from tests.support.bodies import virtual_subnet
from tests.support.figures import Figures

DENSE = "/virtualNetworks/blue/subnets/dense"
DENSE_PREFIX = "10.20.64.0/22"
ON_HOST = 250
NEW = 5  # endpoints added one by one to the full host, each timed
TARGET = "10.20.1.20"  # blue-b, on host 2: the new endpoint's traffic crosses VXLAN
FIRST_PING_BOUND = 60.0


def dense_endpoint(index: int) -> Endpoint:
    """The ``index``-th endpoint of the dense subnet, on host 1, behind the web ACL."""
    address = f"10.20.{64 + (index + 10) // 256}.{(index + 10) % 256}"
    return Endpoint(f"dense-{index}", 1, "blue", "dense", address, f"02DD{index:08X}", acl=True)


def test_a_new_endpoint_on_a_host_with_250_endpoints_pings_soon(
    deployment: Deployment, figures: Figures
) -> None:
    d = deployment
    d.api.put(DENSE, virtual_subnet("dense", DENSE_PREFIX), wait=True)
    start = time.monotonic()
    for index in range(ON_HOST):
        endpoint = dense_endpoint(index)
        created = d.api.put(endpoint.path, endpoint.body())
        d.tenants.nics[endpoint.name] = str(created["instanceId"])
    # Hosts acknowledge revisions in order: once the last is applied, every earlier one is.
    d.api.wait_status([dense_endpoint(ON_HOST - 1).path], within=FIRST_PING_BOUND * 2)
    figures.record(f"{ON_HOST} endpoints written and applied", time.monotonic() - start, "s")
    on_host = {d.tenants.nics[dense_endpoint(i).name] for i in range(ON_HOST)}
    assert on_host <= namespaces()

    waits = []
    for index in range(ON_HOST, ON_HOST + NEW):
        endpoint = dense_endpoint(index)
        start = time.monotonic()
        created = d.api.put(endpoint.path, endpoint.body())
        namespace = d.tenants.nics[endpoint.name] = str(created["instanceId"])
        waits.append(first_ping(namespace, TARGET, within=FIRST_PING_BOUND) - start)
    figures.record(
        f"new endpoint on a host with {ON_HOST}+ endpoints: PUT to first ping, median",
        statistics.median(waits),
        "s",
    )
    figures.record("the same, slowest", max(waits), "s")
