"""The client commands of ``sdnc``, registered by ``controller/cli.py``. Each reads the
controller's URL from ``--controller`` or ``SDNC_URL`` and a bearer token from ``SDNC_TOKEN``
(an environment variable only: a token on the command line would show in ``ps``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from controller.client import documents, kinds, render
from controller.client.http import DEFAULT_URL, Client, ClientError, PutResult

HOSTS_PATH = "/southbound/v1/hosts"
DEFAULT_WAIT = 10.0
PIPE_WIDTH = 4096


class OutputFormat(StrEnum):
    table = "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"


Controller = Annotated[
    str,
    typer.Option(
        "--controller",
        metavar="URL",
        envvar="SDNC_URL",
        help="Base URL of a controller replica (SDNC_TOKEN, if set, is sent as a bearer token).",
        show_envvar=True,
    ),
]
OutputOption = Annotated[
    OutputFormat,
    typer.Option(
        "--output", "-o", metavar="FORMAT", help="table, wide (more columns), json or yaml."
    ),
]
IfMatch = Annotated[
    str | None,
    typer.Option(
        "--if-match",
        metavar="ETAG",
        help="Only if the resource's etag is still this one (412 else).",
    ),
]
Wait = Annotated[
    bool,
    typer.Option("--wait", help="Answer once the hosts applied the change (?wait=applied)."),
]
Timeout = Annotated[
    float,
    typer.Option(
        "--timeout", min=0.1, max=60, metavar="SECONDS", help="Seconds --wait waits at most."
    ),
]


def stdout() -> Console:
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        # Piped into grep or awk: one line per row, however wide, never folded at 80.
        console = Console(soft_wrap=False, width=PIPE_WIDTH)
    return console


def _stderr() -> Console:
    return Console(stderr=True)


@contextmanager
def connected(controller: str) -> Iterator[Client]:
    """A client of ``controller``; a ClientError ends the command with its one line."""
    try:
        with Client(controller, os.environ.get("SDNC_TOKEN") or None) as client:
            yield client
    except ClientError as exc:
        _stderr().print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from exc


def _kind(text: str) -> str:
    try:
        return kinds.resolve(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="KIND") from exc


def get(
    kind: Annotated[
        str, typer.Argument(metavar="KIND", help="networkInterfaces, nic, vnet, acl, servers, ...")
    ],
    resource_id: Annotated[
        str | None,
        typer.Argument(metavar="ID", help="One resource (a child as web/aclRules/r1)."),
    ] = None,
    output: OutputOption = OutputFormat.table,
    controller: Controller = DEFAULT_URL,
) -> None:
    """List the resources of KIND, or show one."""
    name = _kind(kind)
    resource_id = resource_id or kinds.singleton_id(name)
    with connected(controller) as client:
        if resource_id is None:
            items = client.get(f"/{name}").get("value") or []
        else:
            items = [client.get(f"/{name}/{resource_id}")]
    render.resources(stdout(), name, items, output.value, single=resource_id is not None)


def delete(
    kind: Annotated[
        str, typer.Argument(metavar="KIND", help="networkInterfaces, nic, vnet, acl, ...")
    ],
    resource_id: Annotated[str, typer.Argument(metavar="ID")],
    if_match: IfMatch = None,
    wait: Wait = False,
    timeout: Timeout = DEFAULT_WAIT,
    controller: Controller = DEFAULT_URL,
) -> None:
    """Delete one resource."""
    ref = f"/{_kind(kind)}/{resource_id}"
    with connected(controller) as client:
        applied = client.delete(ref, if_match=if_match, wait=timeout if wait else None)
    stdout().print(f"deleted {ref}{_applied(applied, timeout)}", markup=False, highlight=False)


def apply(
    filename: Annotated[
        list[str],
        typer.Option(
            "--filename",
            "-f",
            metavar="FILE|DIR|-",
            help="A JSON or YAML file, a directory of them, or - for standard input "
            "(repeatable). Each resource is PUT at its resourceRef.",
        ),
    ],
    if_match: IfMatch = None,
    wait: Wait = False,
    timeout: Timeout = DEFAULT_WAIT,
    controller: Controller = DEFAULT_URL,
) -> None:
    """Create or replace the resources in files (PUT).

    Resources whose references are not there yet are tried again after the others, so a
    directory applies in any order."""
    try:
        batch = [
            document
            for source in documents.files(filename)
            for document in documents.parse(source, _read(source))
        ]
    except documents.DocumentError as exc:
        raise typer.BadParameter(str(exc), param_hint="--filename") from exc
    if if_match is not None and len(batch) != 1:
        raise typer.BadParameter(
            f"--if-match names the etag of one resource; the files hold {len(batch)}",
            param_hint="--if-match",
        )
    out = stdout()
    with connected(controller) as client:

        def put(document: documents.Document) -> PutResult:
            return client.put(
                document.ref, document.body, if_match=if_match, wait=timeout if wait else None
            )

        failed = _apply_all(batch, put, out, timeout)
    if failed:
        raise typer.Exit(1)


def _read(source: str) -> str:
    if source == documents.STDIN:
        return sys.stdin.read()
    with open(source, encoding="utf-8") as file:
        return file.read()


def _apply_all(
    batch: list[documents.Document],
    put: Callable[[documents.Document], PutResult],
    out: Console,
    timeout: float,
) -> int:
    """PUT every document, those refused for a missing reference again after the others
    until a round makes no progress; returns how many failed."""
    progress = Progress(
        TextColumn("applying"),
        BarColumn(),
        MofNCompleteColumn(),
        console=_stderr(),
        transient=True,
        disable=len(batch) < 2,
    )
    live = progress.console.is_terminal and out.is_terminal

    def say(line: str) -> None:
        (progress.console if live else out).print(line, markup=False, highlight=False)

    failed = 0
    with progress:
        task = progress.add_task("apply", total=len(batch))
        pending = batch
        while pending:
            deferred: list[tuple[documents.Document, ClientError]] = []
            for document in pending:
                try:
                    result = put(document)
                except ClientError as exc:
                    if exc.code == "InvalidReference" and len(pending) > 1:
                        deferred.append((document, exc))
                        continue
                    say(f"error {document.ref} ({document.source}): {exc}")
                    failed += 1
                    if exc.status == 0:  # unreachable: the rest would fail the same way
                        return failed + len(pending) - 1
                else:
                    verb = "created" if result.created else "replaced"
                    say(f"{verb} {document.ref}{_applied(result.applied, timeout)}")
                progress.advance(task)
            if len(deferred) == len(pending):  # no progress: the references are missing
                for document, refused in deferred:
                    say(f"error {document.ref} ({document.source}): {refused}")
                    progress.advance(task)
                return failed + len(deferred)
            pending = [document for document, _ in deferred]
    return failed


def _applied(applied: bool | None, timeout: float) -> str:
    if applied is None:
        return ""
    return " (applied)" if applied else f" (not applied by every host within {timeout:g} s)"


def hosts(
    output: OutputOption = OutputFormat.table,
    controller: Controller = DEFAULT_URL,
) -> None:
    """Each server with its agent: connected, replica, applied revision, lag, failures.

    LAG counts committed revisions the host has not applied; FAILING the objects its agent
    reports it cannot apply (sdnc describe nic ID shows their codes)."""
    with connected(controller) as client:
        document = client.get_path(HOSTS_PATH)
    out = stdout()
    if output in (OutputFormat.json, OutputFormat.yaml):
        render.data(out, document, output.value)
        return
    rows = [_host_row(host, output is OutputFormat.wide) for host in document.get("value") or []]
    headers = ["SERVER", "CONNECTED", "REPLICA", "APPLIED", "LAG", "FAILING", "PROVIDER ADDRESS"]
    if output is OutputFormat.wide:
        headers += ["LAST SEEN", "INSTANCE ID"]
    title = f"committed revision {document.get('revision')}"
    out.print(render.table(title, headers, rows) if rows else f"no servers ({title})")


def _host_row(host: dict[str, Any], wide: bool) -> list[str]:
    def shown(value: object) -> str:
        return "-" if value is None else str(value)

    row = [
        shown(host.get("resourceRef")),
        "yes" if host.get("connected") else "no",
        shown(host.get("replica")),
        shown(host.get("appliedRevision")),
        shown(host.get("lag")),
        shown(host.get("failingObjects")),
        shown(host.get("providerAddress")),
    ]
    if wide:
        row += [shown(host.get("lastSeen")), shown(host.get("instanceId"))]
    return row


def describe(
    kind: Annotated[
        str, typer.Argument(metavar="KIND", help="nic (networkInterfaces), servers, ...")
    ],
    resource_id: Annotated[str, typer.Argument(metavar="ID")],
    controller: Controller = DEFAULT_URL,
) -> None:
    """One resource in detail: state, failure codes, a NIC's endpoints.

    configurationState's details say why the hosts fail it, with their codes."""
    name = _kind(kind)
    with connected(controller) as client:
        resource = client.get(f"/{name}/{resource_id}")
    render.describe(stdout(), name, resource)
