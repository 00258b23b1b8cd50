"""Child processes a test started (listeners, probes, traffic generators), ended for sure."""

from __future__ import annotations

import subprocess
from typing import Any

STOP_TIMEOUT = 10.0


def stop_process(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """Kill ``process`` if it still runs and reap it (waiting at most ``timeout`` seconds)."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=timeout)
