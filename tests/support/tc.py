"""Reading the agent's QoS caps back from the kernel: the token bucket (tbf) a device's root
qdisc holds, as ``tc -j`` reports it."""

from __future__ import annotations

import json
import subprocess


def token_bucket(netns: str, device: str) -> tuple[int, int] | None:
    """(rate in bytes/s, burst in bytes) of the tbf root qdisc of ``device`` in ``netns``;
    None when its root qdisc is no token bucket."""
    done = subprocess.run(
        ["tc", "-n", netns, "-j", "qdisc", "show", "dev", device],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 0, f"tc qdisc show dev {device} in {netns}: {done.stderr}"
    roots = [qdisc for qdisc in json.loads(done.stdout) if qdisc.get("root")]
    if not roots or roots[0]["kind"] != "tbf":
        return None
    options = roots[0]["options"]
    return int(options["rate"]), int(options["burst"])


def assert_capped(netns: str, device: str, mbps: int) -> None:
    """``device`` has the token bucket a cap of ``mbps`` Mbit/s asks for: that rate exactly,
    and a burst of 20 ms at that rate, at least 32 KiB so full-size frames pass (the kernel
    keeps the burst as a time at the rate, so it reads back a few bytes off)."""
    bucket = token_bucket(netns, device)
    assert bucket is not None, f"{device} in {netns} has no token bucket"
    rate = mbps * 1_000_000 // 8
    burst = max(32 * 1024, rate // 50)
    assert bucket[0] == rate, (bucket, mbps)
    assert abs(bucket[1] - burst) <= burst // 1000, (bucket, burst)
