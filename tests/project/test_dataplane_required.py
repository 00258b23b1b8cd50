"""The data-plane plugin (tests.support.dataplane), run on a small suite in a pytest of its own:
a data-plane test's skip is a skip in a developer's run and a failure in a run that requires
the data plane (CI, SDNC_REQUIRE_DATAPLANE), however it was skipped; other tests' skips and
data-plane tests that run are left alone."""

from __future__ import annotations

from pathlib import Path

import pytest

# The suite's one test that runs needs what every data-plane test needs (root, namespaces).
pytestmark = pytest.mark.dataplane
ROOT = Path(__file__).resolve().parents[2]

SUITE = """
import pytest

@pytest.mark.dataplane
def test_skipped_by_itself():
    pytest.skip("no packets today")

@pytest.fixture
def lab():
    pytest.skip("no lab today")

@pytest.mark.dataplane
def test_skipped_by_its_fixture(lab):
    pass

@pytest.mark.dataplane("sdnc-no-such-tool")
def test_needing_a_missing_tool():
    pass

@pytest.mark.dataplane
@pytest.mark.skipif(True, reason="a skipif marker")
def test_skipped_by_a_marker():
    pass

@pytest.mark.dataplane("ip")
def test_that_runs():
    pass

def test_of_something_else_skipped():
    pytest.skip("not the data plane")
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(test_suite=SUITE)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("SDNC_REQUIRE_DATAPLANE", raising=False)
    return pytester


def run(suite: pytest.Pytester) -> pytest.RunResult:
    return suite.runpytest_subprocess("-p", "tests.support.dataplane", "-rA", timeout=120)


def test_a_developers_run_skips_what_the_machine_cannot_run(suite: pytest.Pytester) -> None:
    result = run(suite)
    result.assert_outcomes(passed=1, skipped=5)
    result.stdout.fnmatch_lines(["*sdnc-no-such-tool, which is not installed*"])


@pytest.mark.parametrize(
    ("name", "value"), [("CI", "true"), ("CI", "1"), ("SDNC_REQUIRE_DATAPLANE", "1")]
)
def test_a_run_that_requires_the_data_plane_fails_its_skips(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    result = run(suite)
    # Skipped while being set up (fixture, marker, missing tool) is an error; while running,
    # a failure; the other test's skip stays a skip.
    result.assert_outcomes(passed=1, failed=1, errors=3, skipped=1)
    requirement = f"requires the data plane ({name}={value})"
    result.stdout.fnmatch_lines_random(
        [
            f"*data-plane test skipped (no packets today)*{requirement}*",
            f"*data-plane test skipped (no lab today)*{requirement}*",
            f"*data-plane test skipped (a skipif marker)*{requirement}*",
            "*data-plane test skipped (data-plane tests need sdnc-no-such-tool*",
        ]
    )


@pytest.mark.parametrize("value", ["false", "0", ""])
def test_ci_set_to_false_requires_nothing(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    run(suite).assert_outcomes(passed=1, skipped=5)
