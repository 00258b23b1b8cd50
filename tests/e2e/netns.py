"""Simulated hosts: network namespaces joined by an underlay bridge.

The bridge lives in the test's own (root) namespace and carries the underlay gateway address,
so the controller, listening there, is reachable from every host namespace. Each host is a
namespace with a veth into the bridge holding its provider address. Every name is unique per
run (a random suffix), so several runs, or other tests' throwaway namespaces, never collide.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NETNS_DIR = Path("/run/netns")


class CommandFailed(AssertionError):
    """A command the test needed failed; the message shows it with its output."""


def run(
    *command: str, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
    if check and result.returncode != 0:
        raise CommandFailed(
            f"{' '.join(command)} exited with {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result


def in_ns(namespace: str, *command: str, check: bool = True, timeout: float = 30.0) -> str:
    """``command`` run inside ``namespace``; its stdout."""
    return run("ip", "netns", "exec", namespace, *command, check=check, timeout=timeout).stdout


def ip_json(namespace: str, *args: str) -> list[dict[str, Any]]:
    """``ip -j ARGS`` in ``namespace`` (``bridge`` when args start with ``bridge``)."""
    tool, rest = ("bridge", args[1:]) if args[0] == "bridge" else ("ip", args)
    out = run(tool, "-n", namespace, "-j", *rest).stdout.strip()
    found: list[dict[str, Any]] = json.loads(out) if out else []
    return found


def namespaces() -> set[str]:
    return set(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else set()


def delete_namespace(name: str) -> None:
    run("ip", "netns", "delete", name, check=False)


def link_stats(namespace: str, device: str) -> dict[str, int]:
    """The rx/tx packet counters of ``device`` in ``namespace``."""
    [link] = ip_json(namespace, "-s", "link", "show", "dev", device)
    stats = link["stats64"]
    return {"rx": int(stats["rx"]["packets"]), "tx": int(stats["tx"]["packets"])}


def links(namespace: str) -> dict[str, int]:
    """The links of ``namespace`` by name, with their ifindex (a recreated link gets a new
    one)."""
    return {str(link["ifname"]): int(link["ifindex"]) for link in ip_json(namespace, "link")}


def ping(namespace: str, address: str, *, count: int = 3, wait: float = 1.0) -> bool:
    result = run(
        "ip",
        "netns",
        "exec",
        namespace,
        "ping",
        "-n",
        "-q",
        "-c",
        str(count),
        "-i",
        "0.2",
        "-W",
        f"{wait:g}",
        address,
        check=False,
    )
    return result.returncode == 0


@dataclass
class Host:
    name: str  # the host's network namespace
    provider_address: str


@dataclass
class Underlay:
    """A bridge with ``gateway`` in the root namespace and the host namespaces on it."""

    bridge: str
    prefix: str  # e.g. 10.254.37 (a /24)
    hosts: list[Host] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        return f"{self.prefix}.1"

    @property
    def network(self) -> str:
        return f"{self.prefix}.0/24"

    def host_name(self, index: int) -> str:
        return f"sdnc-h{index}-{self.bridge.removeprefix('sdu')}"

    def add_host(self, index: int) -> Host:
        suffix = self.bridge.removeprefix("sdu")
        host = Host(self.host_name(index), f"{self.prefix}.{10 + index}")
        outside, inside = f"sdv{index}{suffix}", "underlay0"
        run("ip", "netns", "add", host.name)
        self.hosts.append(host)
        run(
            "ip", "link", "add", outside, "type", "veth", "peer", "name", inside, "netns", host.name
        )
        run("ip", "link", "set", outside, "master", self.bridge, "up")
        run("ip", "-n", host.name, "link", "set", "lo", "up")
        run("ip", "-n", host.name, "addr", "add", f"{host.provider_address}/24", "dev", inside)
        run("ip", "-n", host.name, "link", "set", inside, "up")
        return host


def _free_prefix(base: str = "10.254") -> str:
    """A ``base``.N.0/24 no address or route of the root namespace is in."""
    used = run("ip", "-j", "route", "show", "table", "all").stdout
    for _ in range(50):
        prefix = f"{base}.{secrets.randbelow(250) + 2}"
        if f'"{prefix}.' not in used:
            return prefix
    raise RuntimeError(f"no free {base}.N.0/24 for the underlay")


@contextlib.contextmanager
def underlay(host_count: int, base: str = "10.254") -> Iterator[Underlay]:
    """The bridge and ``host_count`` host namespaces, on a free ``base``.N.0/24; all removed
    afterwards (each removal is tried even when another fails)."""
    net = Underlay(f"sdu{secrets.token_hex(3)}", _free_prefix(base))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(run, "ip", "link", "delete", net.bridge, check=False)
        run("ip", "link", "add", net.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{net.gateway}/24", "dev", net.bridge)
        run("ip", "link", "set", net.bridge, "up")
        for index in range(1, host_count + 1):
            cleanup.callback(delete_namespace, net.host_name(index))
            net.add_host(index)
        yield net


def remove_namespaces(names: Sequence[str]) -> list[str]:
    """Delete those of ``names`` that exist; the ones that did."""
    present = sorted(set(names) & namespaces())
    with contextlib.ExitStack() as cleanup:  # every one is tried, even after a failure
        for name in present:
            cleanup.callback(delete_namespace, name)
    return present
