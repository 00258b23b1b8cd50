"""Resources as an operator reads them: a table (``wide`` adds ids and etags), or the JSON or
YAML the API answers (which ``sdnc apply -f`` takes back)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

# table, wide, json or yaml.
Output = str
Json = dict[str, Any]
Column = tuple[str, Callable[[Json], str]]


def _props(resource: Json) -> Json:
    properties = resource.get("properties")
    return properties if isinstance(properties, dict) else {}


def _children(resource: Json, member: str) -> list[Json]:
    items = _props(resource).get(member)
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _last(ref: object) -> str:
    if isinstance(ref, dict):
        ref = ref.get("resourceRef")
    return str(ref).rsplit("/", 1)[-1] if ref else "-"


def _joined(values: Sequence[object]) -> str:
    return ", ".join(str(v) for v in values if v not in (None, "")) or "-"


def _subnets(resource: Json) -> str:
    return _joined(
        [
            f"{s.get('resourceId')}={_props(s).get('addressPrefix', '?')}"
            for s in _children(resource, "subnets")
        ]
    )


def _addresses(resource: Json) -> str:
    return _joined(
        [_props(c).get("privateIPAddress") for c in _children(resource, "ipConfigurations")]
    )


def _management(resource: Json) -> str:
    found: list[object] = []
    for connection in _props(resource).get("connections") or []:
        if isinstance(connection, dict):
            found.extend(connection.get("managementAddresses") or [])
    return _joined(found)


def _prefixes(resource: Json) -> str:
    space = _props(resource).get("addressSpace") or {}
    return _joined(space.get("addressPrefixes") or []) if isinstance(space, dict) else "-"


def _vips(resource: Json) -> str:
    return _joined(
        [_props(f).get("privateIPAddress") for f in _children(resource, "frontendIPConfigurations")]
    )


def _member(name: str) -> Callable[[Json], str]:
    return lambda resource: str(_props(resource).get(name, "-"))


# Columns that tell resources of a kind apart, after the common ones.
KIND_COLUMNS: dict[str, list[Column]] = {
    "logicalNetworks": [
        ("VIRTUALIZED", _member("networkVirtualizationEnabled")),
        ("SUBNETS", _subnets),
    ],
    "virtualNetworks": [("ADDRESS SPACE", _prefixes), ("SUBNETS", _subnets)],
    "networkInterfaces": [
        ("MAC", _member("privateMacAddress")),
        ("ADDRESSES", _addresses),
        ("SERVER", lambda r: _last(_props(r).get("server"))),
    ],
    "servers": [("ADDRESSES", _management)],
    "accessControlLists": [("RULES", lambda r: str(len(_children(r, "aclRules"))))],
    "routeTables": [("ROUTES", lambda r: str(len(_children(r, "routes"))))],
    "macPools": [
        ("START", _member("startMacAddress")),
        ("END", _member("endMacAddress")),
    ],
    "loadBalancers": [("VIPS", _vips)],
    "publicIPAddresses": [("ADDRESS", _member("ipAddress"))],
}


def configuration_status(resource: Json) -> str:
    state = _props(resource).get("configurationState")
    return str(state.get("status", "-")) if isinstance(state, dict) else "-"


def columns(kind: str, output: Output) -> list[Column]:
    common: list[Column] = [
        ("NAME", lambda r: str(r.get("resourceId", "-"))),
        ("PROVISIONING", _member("provisioningState")),
        ("CONFIGURATION", configuration_status),
    ]
    wide: list[Column] = [
        ("INSTANCE ID", lambda r: str(r.get("instanceId", "-"))),
        ("ETAG", lambda r: str(r.get("etag", "-"))),
    ]
    return [*common, *KIND_COLUMNS.get(kind, []), *(wide if output == "wide" else [])]


def table(title: str | None, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    result = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for header in headers:
        result.add_column(header, overflow="fold", no_wrap=True)
    for row in rows:
        result.add_row(*row)
    return result


def resources(
    console: Console, kind: str, items: Sequence[Json], output: Output, *, single: bool
) -> None:
    """``items`` of ``kind``; as JSON or YAML one resource (``single``) is the resource,
    a listing is ``{"value": [...]}`` as the API answers it."""
    if output in ("json", "yaml"):
        document: object = items[0] if single else {"value": list(items)}
        data(console, document, output)
        return
    if not items:
        console.print(f"no {kind}")
        return
    chosen = columns(kind, output)
    rows = [[get(item) for _, get in chosen] for item in items]
    console.print(table(None, [header for header, _ in chosen], rows))


def data(console: Console, document: object, output: Output) -> None:
    """``document`` as JSON or YAML, unstyled (for pipes and files)."""
    if output == "yaml":
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(document, indent=2, ensure_ascii=False)
    console.out(text.rstrip("\n"), highlight=False)


def describe(console: Console, kind: str, resource: Json) -> None:
    """``resource`` for a person: identity, states, the configurationState details (why its
    hosts fail it, with their codes), and a NIC's endpoints."""
    properties = _props(resource)
    state = properties.get("configurationState")
    state = state if isinstance(state, dict) else {}
    fields = [
        ("Name", resource.get("resourceId")),
        ("Resource ref", resource.get("resourceRef")),
        ("Instance id", resource.get("instanceId")),
        ("Etag", resource.get("etag")),
        ("Provisioning", properties.get("provisioningState")),
        ("Configuration", state.get("status")),
    ]
    if kind == "networkInterfaces":
        server = properties.get("server")
        fields += [
            ("MAC", properties.get("privateMacAddress")),
            ("Server", server.get("resourceRef") if isinstance(server, dict) else None),
        ]
    for label, value in fields:
        console.print(f"{label + ':':<15} {'-' if value in (None, '') else value}", markup=False)
    details = [d for d in state.get("detailedInfo") or [] if isinstance(d, dict)]
    if details:
        rows = [
            [str(d.get("code", "-")), str(d.get("source", "-")), str(d.get("message", "-"))]
            for d in details
        ]
        console.print(table("configuration details", ["CODE", "SOURCE", "MESSAGE"], rows))
    configs = _children(resource, "ipConfigurations")
    if configs:
        rows = [
            [
                str(c.get("resourceId", "-")),
                str(_props(c).get("privateIPAddress", "-")),
                str((_props(c).get("subnet") or {}).get("resourceRef", "-")),
                str(_props(c).get("provisioningState", "-")),
            ]
            for c in configs
        ]
        console.print(
            table("ipConfigurations", ["NAME", "ADDRESS", "SUBNET", "PROVISIONING"], rows)
        )
