"""Smoke test of ``sdnc bench big``: it runs end to end with small sizes, every request
answered, every figure reported; what it set up is kept or removed as asked. The numbers are
not checked."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import create_database
from tests.support.bench import run_bench
from tests.support.server import running_controller

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

# More NICs than the first page of a collection holds, so the collection is streamed.
SIZES = ("--nics", "150", "--configs", "20", "--rules", "10", "--nat-rules", "10")
SIZES += ("--concurrency", "3")


def bench(*args: str, database_url: str) -> tuple[dict[str, object], str]:
    return run_bench("big", *SIZES, *args, database_url=database_url)


def check(report: dict[str, object], *, measured: bool) -> None:
    collection, concurrent, rules, configs, nat_rules, frontends = (
        report[part]
        for part in (
            "collection",
            "concurrent",
            "acl_child_add",
            "nic_child_add",
            "lb_child_add",
            "lb_frontend_add",
        )
    )
    assert isinstance(collection, dict)
    assert isinstance(concurrent, dict)
    assert isinstance(rules, dict)
    assert isinstance(configs, dict)
    assert isinstance(nat_rules, dict)
    assert isinstance(frontends, dict)
    assert 0 < collection["seconds_to_first_byte"] <= collection["seconds"]
    assert collection["response_mib"] > 0
    assert concurrent["statuses"] == {"200": 3}
    for adds in (rules, configs, nat_rules, frontends):
        assert adds["statuses"] == {"201": 20}
        assert adds["delete"]["count"] == 20
    for probed in (concurrent, rules, configs, nat_rules, frontends):
        assert probed["discovery"]["count"] > 0
        assert probed["discovery"]["failures"] == 0
    figures = [collection["rss_peak_mib"], collection["controller_cpu_seconds"]]
    figures += [concurrent["rss_peak_mib"], concurrent["controller_cpu_seconds"]]
    if measured:
        assert all(isinstance(figure, float) for figure in figures), figures
    else:
        # Not given the controller's pid: no figure rather than a wrong one.
        assert figures == [None] * 4


def test_bench_big_starts_its_own_controller(postgres_server: str) -> None:
    with create_database(postgres_server) as url:
        report, _ = bench(database_url=url)
    check(report, measured=True)


def test_bench_big_keeps_what_it_set_up_and_reuses_it(postgres_server: str) -> None:
    with create_database(postgres_server) as url, running_controller(url) as server:
        first, said = bench("--controller", server.base_url, "--keep", database_url=url)
        assert "creating 150 networkInterfaces" in said
        listed = httpx.get(f"{server.base_url}/networking/v1/networkInterfaces").json()["value"]
        assert len(listed) == 151  # and the host NIC
        second, said = bench("--controller", server.base_url, database_url=url)
        assert "creating" not in said
        kinds = ("networkInterfaces", "accessControlLists", "loadBalancers", "virtualNetworks")
        for collection in kinds:
            listed = httpx.get(f"{server.base_url}/networking/v1/{collection}").json()["value"]
            assert listed == [], collection
    for report in (first, second):
        check(report, measured=False)
