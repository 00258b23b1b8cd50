"""A pytest plugin for the data-plane tests (network namespaces, veth, VXLAN, nftables, tc and
real packets), loaded by the root conftest, and the rule that keeps a green run honest.

``@pytest.mark.dataplane("nft", "tc")`` marks a test that needs root, working ``ip netns`` and
the commands named (``ip`` always). On a machine without them the test is skipped -- unless
the run requires the data plane: ``CI`` is true (our CI sets it) or ``SDNC_REQUIRE_DATAPLANE``
is. Then every skip of a marked test, whatever raised it (the check here, a fixture, the test
itself, a ``skipif``), is reported as a failure naming why it was skipped, so a green run always
means the packets were checked.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
from collections.abc import Generator

import pytest

MARKER = "dataplane"
REQUIRE = "SDNC_REQUIRE_DATAPLANE"
FALSE = frozenset({"", "0", "false", "no", "off"})


def required() -> str | None:
    """Why this run must exercise the data plane (the setting that says so), or None."""
    for name in (REQUIRE, "CI"):
        value = os.environ.get(name)
        if value is not None and value.strip().lower() not in FALSE:
            return f"{name}={value}"
    return None


@functools.cache
def _namespaces_missing() -> str | None:
    if os.geteuid() != 0:
        return "data-plane tests need root (network namespaces, veth, nftables)"
    if shutil.which("ip") is None:
        return "data-plane tests need iproute2 (ip)"
    probe = f"sdnc-probe-{secrets.token_hex(3)}"
    made = subprocess.run(
        ["ip", "netns", "add", probe], capture_output=True, text=True, check=False, timeout=30
    )
    if made.returncode != 0:
        return f"network namespaces are unavailable: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True, check=False, timeout=30)
    return None


def missing(tools: tuple[str, ...]) -> str | None:
    """Why this machine cannot run a data-plane test that uses ``tools`` (None if it can)."""
    absent = [tool for tool in tools if shutil.which(tool) is None]
    if absent:
        return f"data-plane tests need {', '.join(absent)}, which is not installed"
    return _namespaces_missing()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*tools): needs root, network namespaces and these commands; a skip fails "
        f"the run when CI or {REQUIRE} is true",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    markers = list(item.iter_markers(MARKER))
    if markers:
        tools = sorted({str(tool) for marker in markers for tool in marker.args})
        reason = missing(tuple(tools))
        if reason is not None:
            pytest.skip(reason)


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if not report.skipped or hasattr(report, "wasxfail"):
        return report
    if item.get_closest_marker(MARKER) is None:
        return report
    why = required()
    if why is not None:
        report.outcome = "failed"
        report.longrepr = (
            f"data-plane test skipped ({_skip_reason(report)}) in a run that requires the "
            f"data plane ({why}): install what it needs and run it as root, or unset {why}"
        )
    return report
