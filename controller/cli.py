"""The ``sdnc`` command: the composition root that reads settings and starts things."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from controller.cli_access import cert_app, token_app
from controller.cli_agent import agent, agent_teardown, configure_logging
from controller.cli_bench import bench_app
from controller.cli_style import command_group
from controller.client import commands as client
from controller.client.trace import trace
from controller.settings import Settings

app = command_group(help="SDN network controller with an MS-NCNBI compatible northbound API.")
db_app = command_group(help="Database maintenance.")
app.add_typer(db_app, name="db")
app.add_typer(bench_app, name="bench")
# The client commands: HTTP to a running controller (controller/client/).
CLIENT = "Client (talks to a running controller)"
for command in (client.get, client.apply, client.delete, client.hosts, client.describe, trace):
    app.command(rich_help_panel=CLIENT)(command)
app.add_typer(token_app, name="token")
app.add_typer(cert_app, name="cert")
app.command()(agent)
app.command("agent-teardown")(agent_teardown)


def settings_epilog() -> str:
    """The SDNC_* settings with their defaults, for ``serve --help`` (kept verbatim: the
    ``\b`` line stops click from re-flowing them into one paragraph)."""
    lines = ["\b", "Settings (environment variables) and their defaults:"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(empty: embedded SQLite)" if name == "database_url" else str(default)
        lines.append(f"  SDNC_{name.upper():<36} {shown}")
    return "\n".join(lines)


@app.command(epilog=settings_epilog())
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="Address to listen on.",
            envvar="SDNC_HOST",
            show_envvar=True,
            show_default="127.0.0.1",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT",
            help="TCP port to listen on.",
            envvar="SDNC_PORT",
            show_envvar=True,
            show_default="8080",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Serve TLS with this certificate (chain), PEM."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(metavar="FILE", help="The certificate's private key, PEM.")
    ] = None,
    client_ca: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Accept client certificates signed by this CA, PEM."),
    ] = None,
    auth: Annotated[
        str | None,
        typer.Option(
            metavar="MODES", help="How clients authenticate: none, or any of token,x509,oidc."
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow --auth none on a non-loopback address.")
    ] = False,
) -> None:
    """Apply pending migrations and serve the northbound API. SIGHUP reloads the TLS files.

    Every other setting comes from an SDNC_* environment variable (below; README.md says
    what each means)."""
    from pydantic import ValidationError

    from controller.app import create_app
    from controller.security import oidc_options
    from controller.server import (
        Server,
        build_config,
        exposure_problem,
        raise_open_files_limit,
        tls_reloader,
    )
    from controller.store import migrate
    from controller.tls import TlsError

    given = {
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "tls_client_ca": client_ca,
        "auth": auth,
        "insecure": insecure or None,
    }
    # Options given on the command line win over the SDNC_* environment.
    overrides: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    try:
        settings = Settings(**overrides)
        reloader = tls_reloader(settings)
        if "oidc" in settings.auth_modes():
            oidc_options(settings)  # refuses algorithms that are not asymmetric
    except (ValidationError, TlsError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    listen = host or settings.host
    problem = exposure_problem(settings, listen)
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    configure_logging(settings)
    settings.ensure_data_dir()
    url = settings.resolved_database_url()
    migrate.upgrade(url)
    raise_open_files_limit()
    config = build_config(
        create_app(settings),
        settings,
        host=listen,
        port=settings.port if port is None else port,
        # JSON lines: the web server's records go through the root logger's formatter too.
        own_logging=settings.log_format == "text",
        tls=reloader.context if reloader is not None else None,
    )
    server = Server(config, reloader)
    server.run()
    if not server.started:
        raise typer.Exit(3)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all pending migrations to the configured database."""
    from controller.store import migrate

    settings = Settings()
    configure_logging(settings)
    settings.ensure_data_dir()
    migrate.upgrade(settings.resolved_database_url())
    typer.echo(f"database at revision {migrate.current_revision(settings.resolved_database_url())}")


@db_app.command("finish-upgrade")
def db_finish_upgrade() -> None:
    """Once no replica of an earlier version runs: fill in what such replicas left out and
    let the replicas record what a write changed rather than its whole aggregate."""
    import asyncio

    from controller.resources import REGISTRY
    from controller.service.upgrade import finish_upgrade
    from controller.store.database import Database

    settings = Settings()
    configure_logging(settings)
    settings.ensure_data_dir()

    async def run() -> int:
        database = Database(settings.resolved_database_url())
        try:
            return await finish_upgrade(database, REGISTRY)
        finally:
            await database.dispose()

    filled = asyncio.run(run())
    typer.echo(f"upgrade finished: {filled} sibling keys filled in; writes are recorded as patches")


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration revision and the newest one this version knows."""
    from controller.store import migrate

    settings = Settings()
    current = migrate.current_revision(settings.resolved_database_url())
    typer.echo(f"current: {current or 'empty database'}; head: {migrate.head_revision()}")


@app.command("agent-token")
def agent_token(
    server: Annotated[str, typer.Argument(metavar="SERVER", help="The server's resourceId.")],
) -> None:
    """Print the token the host agent of SERVER authenticates with.

    It reads the controller's database: run it with the controller's SDNC_DATABASE_URL (or,
    on the embedded store, in the directory holding its SDNC_DATA_DIR)."""
    import asyncio

    from controller.southbound.admin import agent_token as token_of
    from controller.store.database import Database

    async def find() -> str | None:
        database = Database(Settings().resolved_database_url())
        try:
            return await token_of(database, server)
        finally:
            await database.dispose()

    token = asyncio.run(find())
    if token is None:
        typer.echo(f"no server '{server}'", err=True)
        raise typer.Exit(1)
    typer.echo(token)


@app.command("simulate-agents")
def simulate_agents(
    controller: Annotated[
        list[str],
        typer.Option(metavar="URL", help="Controller base URL; repeat to give agents fallbacks."),
    ],
    count: Annotated[
        int, typer.Option(min=1, metavar="N", help="How many servers get an agent.")
    ] = 10,
    provider_network: Annotated[
        str,
        typer.Option(metavar="PREFIX", help="Provider addresses are handed out from this prefix."),
    ] = "10.250.0.0/16",
    fail_dip: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ID",
            help="The instanceId of an ipConfiguration whose load balancer probes fail on "
            "its host (it is reported Down); repeat for more.",
        ),
    ] = None,
) -> None:
    """Run simulated host agents (in memory) for the first COUNT servers, until interrupted."""
    import asyncio

    from controller.bench.fleet import run_fleet

    settings = Settings()
    configure_logging(settings)
    asyncio.run(
        run_fleet(
            settings.resolved_database_url(),
            controller,
            count,
            provider_network,
            failing_dips=frozenset(dip.lower() for dip in fail_dip or ()),
        )
    )


@app.command()
def openapi(
    output: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Print the OpenAPI document of the northbound API."""
    text = openapi_text()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


def openapi_text() -> str:
    from controller.app import create_app

    document = create_app(Settings(database_url="sqlite://")).openapi()
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def main() -> None:
    app()
