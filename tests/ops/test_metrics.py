"""``GET /metrics`` of a running controller, read with Prometheus' own text parser."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from controller.api.diagnostics import PATH_WORDS
from controller.ops.metrics import kind_label
from controller.resources import REGISTRY
from tests.support.bodies import acl, acl_rule
from tests.support.metrics import scrape
from tests.support.server import ControllerServer, running_controller

pytestmark = pytest.mark.slow


@pytest.fixture
def controller(database_url: str) -> Iterator[ControllerServer]:
    with running_controller(database_url) as server:
        yield server


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/networking/v1/accessControlLists", "accessControlLists"),
        ("/Networking/V1/accesscontrollists/web/", "accessControlLists"),
        ("/networking/v1/accessControlLists/web/aclRules/r1", "accessControlLists/aclRules"),
        ("/networking/v1/logicalNetworks/a/logicalSubnets/b", "logicalNetworks/subnets"),
        ("/networking/v1/diagnostics/slbStateResults/1234", "diagnostics/slbStateResults"),
        ("/networking/discovery", "discovery"),
        ("/networking/v1/noSuchKind/x", "unknown"),
        ("/networking/v1/accessControlLists/web/nope/x", "unknown"),
        ("/readyz", "readyz"),
        ("/wp-admin/setup.php", "other"),
    ],
)
def test_requests_are_labelled_by_kind_never_by_path(path: str, label: str) -> None:
    assert kind_label(REGISTRY, path, PATH_WORDS) == label


def test_requests_by_method_kind_and_status_with_latency(controller: ControllerServer) -> None:
    base = controller.base_url
    nbi = f"{base}/networking/v1"
    for index in range(3):
        assert httpx.put(f"{nbi}/accessControlLists/a{index}", json=acl()).status_code == 201
    rule = acl_rule("r1", 100)
    assert httpx.put(f"{nbi}/accessControlLists/a0/aclRules/r1", json=rule).status_code == 201
    assert httpx.get(f"{nbi}/accessControlLists/missing").status_code == 404
    assert httpx.put(f"{nbi}/accessControlLists/bad", json={"properties": 1}).status_code == 400
    for index in range(5):  # distinct ids of an unknown kind: one series, not five
        assert httpx.get(f"{nbi}/bogus{index}/x{index}").status_code == 404

    metrics = scrape(base)
    requests = "sdnc_http_requests_total"
    assert metrics.types["sdnc_http_requests"] == "counter"
    assert metrics.value(requests, method="PUT", kind="accessControlLists", status="201") == 3
    assert metrics.value(requests, method="PUT", kind="accessControlLists/aclRules", status="201")
    assert metrics.value(requests, method="GET", kind="accessControlLists", status="404") == 1
    assert metrics.value(requests, method="PUT", kind="accessControlLists", status="400") == 1
    assert metrics.value(requests, method="GET", kind="unknown", status="404") == 5
    kinds = {dict(labels)["kind"] for labels in metrics.series(requests)}
    assert not any("/x" in kind or kind.startswith("bogus") for kind in kinds), kinds

    assert metrics.types["sdnc_http_request_duration_seconds"] == "histogram"
    count = "sdnc_http_request_duration_seconds_count"
    assert metrics.value(count, method="PUT", kind="accessControlLists") == 4  # 201s and 400
    total = metrics.value(
        "sdnc_http_request_duration_seconds_sum", method="PUT", kind="accessControlLists"
    )
    assert total > 0
    buckets = metrics.series("sdnc_http_request_duration_seconds_bucket")
    infinite = {labels: v for labels, v in buckets.items() if ("le", "+Inf") in labels}
    assert (
        infinite[frozenset({("method", "PUT"), ("kind", "accessControlLists"), ("le", "+Inf")})]
        == 4
    )

    # The compiler ran once per change, and the replica is caught up with the change log.
    assert metrics.value("sdnc_compile_seconds_count") >= 4
    committed = metrics.value("sdnc_changelog_revision")
    assert committed >= 4
    assert metrics.value("sdnc_compiled_revision") == committed
    assert metrics.value("sdnc_change_follower_lag_revisions") == 0
    assert metrics.value("sdnc_database_up") == 1
    assert metrics.value("sdnc_database_pool_size") >= 1
    assert (
        0
        <= metrics.value("sdnc_database_pool_connections_in_use")
        <= metrics.value("sdnc_database_pool_size")
    )
    assert metrics.value("sdnc_agents_connected") == 0
    assert metrics.value("sdnc_agent_applied_lag_revisions_bucket", le="+Inf") == 0
    assert metrics.value("sdnc_wait_applied_total", outcome="timeout") == 0
    assert not any(name.endswith("_created") for name in metrics.names())


def test_a_scrape_counts_itself_once_the_next_one_comes(controller: ControllerServer) -> None:
    scrape(controller.base_url)
    metrics = scrape(controller.base_url)
    counted = metrics.value("sdnc_http_requests_total", method="GET", kind="metrics", status="200")
    assert counted >= 1
    assert metrics.value("sdnc_http_requests_in_flight") == 1  # this scrape
