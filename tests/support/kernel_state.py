"""What an agent put in the kernel, read back in a form two builds of one host compare by:
links by name and kind with what the agent sets on them, addresses, routes, permanent
neighbours, the FDB entries the agent makes, root qdiscs, forwarding (IPv4, IPv6)/proxy-ARP
sysctls, policy routing rules and the routes of numbered tables, and the nftables tables
(stateless, chains and set/map elements order-free, handles dropped).
What the kernel picks at random (veth and bridge MACs, interface indexes) is left out."""

from __future__ import annotations

import json
import subprocess
from typing import Any

Json = dict[str, Any]


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def _json(*argv: str) -> list[Json]:
    out = _run(*argv).strip()
    found: list[Json] = json.loads(out) if out else []
    return found


def _sysctl(netns: str, path: str) -> str:
    return _run("ip", "netns", "exec", netns, "cat", f"/proc/sys/{path}").strip()


def namespace_state(netns: str) -> Json:
    links = _json("ip", "-n", netns, "-j", "-d", "addr", "show")
    described: dict[str, Json] = {}
    agent_macs: set[str] = set()
    for link in links:
        name = str(link["ifname"])
        info = link.get("linkinfo", {})
        kind = info.get("info_kind", "device")
        entry: Json = {
            "kind": kind,
            "up": "UP" in link.get("flags", ()),
            "master": link.get("master"),
            "addresses": sorted(
                f"{a['local']}/{a['prefixlen']}"
                for a in link.get("addr_info", ())
                if a.get("scope") != "link"
            ),
        }
        if kind == "vxlan":
            data = info.get("info_data", {})
            entry["vxlan"] = {k: data.get(k) for k in ("id", "local", "port", "learning")}
        if name == "eth0":  # the NIC's MAC is the agent's; the other MACs are random
            entry["mac"] = link.get("address")
            agent_macs.add(str(link.get("address")))
        if kind == "veth" or name == "eth0":
            conf = f"net/ipv4/conf/{name}"
            entry["proxy_arp"] = _sysctl(netns, f"{conf}/proxy_arp")
            entry["proxy_delay"] = _sysctl(netns, f"net/ipv4/neigh/{name}/proxy_delay")
        described[name] = entry
    routes = sorted(
        json.dumps({k: r.get(k) for k in ("dst", "dev", "gateway", "scope")}, sort_keys=True)
        for r in [
            *_json("ip", "-n", netns, "-j", "route", "show"),
            *_json("ip", "-n", netns, "-6", "-j", "route", "show"),
        ]
        if r.get("protocol") != "kernel"
    )
    neighbours = sorted(
        f"{n['dst']} {n.get('lladdr')} {n['dev']}"
        for n in _json("ip", "-n", netns, "-j", "neigh", "show", "nud", "permanent")
    )
    fdb = sorted(
        f"{e['mac']} {e['ifname']} {e.get('master')} {e.get('state')} {e.get('dst')}"
        for e in _json("bridge", "-n", netns, "-j", "fdb", "show")
        if str(e.get("ifname", "")).startswith(("vx", "br"))
        and e.get("state") in ("static", "permanent")
        and e.get("mac") not in _link_macs(links)
        and not int(str(e.get("mac"))[:2], 16) & 1  # multicast: the kernel's own
    )
    qdiscs = sorted(
        json.dumps(
            {"dev": q.get("dev"), "kind": q.get("kind"), "rate": q.get("options", {}).get("rate")}
        )
        for q in _json("tc", "-n", netns, "-j", "qdisc", "show")
        if q.get("root") and q.get("kind") == "tbf"
    )
    return {
        "links": described,
        "routes": routes,
        "neighbours": neighbours,
        "fdb": fdb,
        "qdiscs": qdiscs,
        "forwarding": _sysctl(netns, "net/ipv4/ip_forward"),
        "forwarding6": _sysctl(netns, "net/ipv6/conf/all/forwarding"),
        "rules": sorted(
            json.dumps(r, sort_keys=True) for r in _json("ip", "-n", netns, "-j", "rule", "show")
        ),
        "table_routes": sorted(
            json.dumps(r, sort_keys=True)
            for r in _json("ip", "-n", netns, "-j", "route", "show", "table", "all")
            if str(r.get("table", "")).isdigit()  # the route tables' (not main, local)
        ),
        "nftables": nftables_state(netns),
    }


def _link_macs(links: list[Json]) -> set[str]:
    return {str(link.get("address")) for link in links}


def nftables_state(netns: str) -> Json:
    """The ruleset as sets of elements and lists of rules per chain (no handles, no counts)."""
    listed = json.loads(_run("ip", "netns", "exec", netns, "nft", "-j", "-s", "list", "ruleset"))
    state: Json = {}
    for item in listed.get("nftables", ()):
        for kind in ("set", "map"):
            if kind in item:
                found = item[kind]
                elements = sorted(json.dumps(e, sort_keys=True) for e in found.get("elem", ()))
                key = f"{found['family']} {found['table']} {kind} {found['name']}"
                state[key] = {"type": found.get("type"), "elements": elements}
        if "chain" in item:
            found = item["chain"]
            key = f"{found['family']} {found['table']} chain {found['name']}"
            state.setdefault(key, {"rules": []})
            state[key]["hook"] = [found.get(k) for k in ("type", "hook", "prio", "policy")]
        if "rule" in item:
            found = item["rule"]
            key = f"{found['family']} {found['table']} chain {found['chain']}"
            state.setdefault(key, {"rules": []})["rules"].append(found["expr"])
    return state


def host_state(namespaces: list[str]) -> Json:
    """Every listed namespace's state, by name."""
    return {name: namespace_state(name) for name in sorted(namespaces)}


def differences(left: Any, right: Any, path: str = "") -> list[str]:
    """Where two readings differ, as ``path: left != right`` lines (empty when equal)."""
    if isinstance(left, dict) and isinstance(right, dict):
        found: list[str] = []
        for key in sorted({*left, *right}, key=str):
            if key not in left or key not in right:
                found.append(f"{path}/{key}: {left.get(key)!r} != {right.get(key)!r}")
            else:
                found += differences(left[key], right[key], f"{path}/{key}")
        return found
    return [] if left == right else [f"{path}: {left!r} != {right!r}"]
