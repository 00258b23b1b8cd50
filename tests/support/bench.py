"""Running ``sdnc bench ...`` as a user does, for the benchmarks' smoke tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def run_bench(*args: str, database_url: str) -> tuple[dict[str, object], str]:
    """``sdnc bench ARGS --json`` on ``database_url``; its report and what it said on stderr.
    It must succeed."""
    command = [sys.executable, "-m", "controller", "bench", *args, "--json"]
    env = {**os.environ, "SDNC_DATABASE_URL": database_url, "SDNC_LOG_LEVEL": "warning"}
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report, result.stderr
