"""Throwaway hosts for kernel tests: an underlay bridge and host namespaces, each with a
provider address, and the southbound objects an agent of such a host would receive."""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
import uuid
from dataclasses import dataclass, field
from typing import Any

Body = dict[str, Any]


def sh(*argv: str, check: bool = True, timeout: float = 60.0) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Lab:
    """Namespaces made for one test; every one, and any namespace named with one of
    ``owners`` (router/NIC namespaces of the test's agents), is deleted afterwards."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    made: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)

    def namespace(self, role: str) -> str:
        name = f"sdnct-{role}-{self.tag}"
        sh("ip", "netns", "add", name)
        self.made.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def underlay(self) -> str:
        name = self.namespace("u")
        sh("ip", "-n", name, "link", "add", "ubr", "type", "bridge")
        sh("ip", "-n", name, "link", "set", "ubr", "up")
        return name

    def host(self, underlay: str, index: int) -> tuple[str, str]:
        """A host namespace plugged into the underlay; returns (namespace, provider address)."""
        name = self.namespace(f"h{index}")
        address = f"192.168.240.{index}"
        port = f"up{index}{self.tag}"[:15]
        sh("ip", "link", "add", port, "netns", underlay, "type", "veth", "peer", "name", "pa0",
           "netns", name)  # fmt: skip
        sh("ip", "-n", underlay, "link", "set", port, "master", "ubr", "up")
        sh("ip", "-n", name, "addr", "add", f"{address}/24", "dev", "pa0")
        sh("ip", "-n", name, "link", "set", "pa0", "up")
        return name, address

    def cleanup(self) -> None:
        """Delete every namespace of the test (each one tried, even after a failure)."""
        names = {line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line}
        doomed = [n for n in names if n in self.made or any(o in n for o in self.owners)]
        with contextlib.ExitStack() as cleanup:
            for name in doomed:
                cleanup.callback(sh, "ip", "netns", "del", name, check=False)


@dataclass
class Objects:
    """Builds one host's southbound objects."""

    server: str = field(default_factory=new_id)
    objects: dict[str, Body] = field(default_factory=dict)

    def host(self, address: str) -> Objects:
        self.objects[f"host/{self.server}"] = {"providerAddress": address}
        return self

    def network(self, subnet: str, vnet: str, vsid: int, prefix: str = "10.1.0.0/24") -> Objects:
        gateway = _gateway(prefix.split("/")[0])
        body = {"vsid": vsid, "virtualNetwork": vnet, "prefix": prefix, "gateway": gateway}
        self.objects[f"network/{subnet}"] = body
        return self

    def endpoint(
        self, key: str, nic: str, mac: str, ip: str, vnet: str, vsid: int, **extra: Any
    ) -> Objects:
        gateway = _gateway(ip)
        body = {
            "nic": nic,
            "mac": mac,
            "ip": ip,
            "prefixLength": 64 if ":" in ip else 24,
            "gateway": gateway,
            "vsid": vsid,
            "subnet": "s",
            "virtualNetwork": vnet,
            "acls": [],
            "qos": {"inboundMaximumMbps": None, "outboundMaximumMbps": None},
        } | extra
        self.objects[f"endpoint/{key}"] = body
        return self

    def mapping(self, key: str, mac: str, ip: str, vnet: str, vsid: int, underlay: str) -> Objects:
        body = {"vsid": vsid, "virtualNetwork": vnet, "ip": ip, "mac": mac,
                "providerAddress": underlay}  # fmt: skip
        self.objects[f"mapping/{key}"] = body
        return self


def _gateway(address: str) -> str:
    """The first address of the /24 (IPv4) or /64 (IPv6) holding ``address``."""
    if ":" in address:
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False).network_address + 1)
    return address.rsplit(".", 1)[0] + ".1"
