"""The ``sdnc`` command: the composition root that reads settings and starts things."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from controller.cli_access import cert_app, token_app
from controller.cli_agent import agent, agent_teardown, configure_logging
from controller.client import commands as client
from controller.client.trace import trace
from controller.settings import Settings

app = typer.Typer(
    help="SDN network controller with an MS-NCNBI compatible northbound API.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
bench_app = typer.Typer(help="Load benchmarks.", no_args_is_help=True)
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


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration revision and the newest one this version knows."""
    from controller.store import migrate

    settings = Settings()
    current = migrate.current_revision(settings.resolved_database_url())
    typer.echo(f"current: {current or 'empty database'}; head: {migrate.head_revision()}")


@bench_app.command("api")
def bench_api(
    controller: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Base URL of a running controller; default: start one on the configured database.",
        ),
    ] = None,
    clients: Annotated[int, typer.Option(min=1, metavar="N", help="Concurrent clients.")] = 32,
    requests: Annotated[int, typer.Option(min=1, metavar="N", help="Requests per phase.")] = 5000,
    list_size: Annotated[
        int, typer.Option(min=1, metavar="N", help="logicalNetworks created for the list phase.")
    ] = 50,
    keep: Annotated[bool, typer.Option(help="Keep the resources the benchmark created.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    phase: Annotated[
        list[str] | None,
        typer.Option(
            metavar="PHASE",
            help="Run only this phase (repeatable): create, get, list, update, nic-create, "
            "nic-child-add. Default: all.",
        ),
    ] = None,
    configs_per_nic: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="ipConfigurations nic-child-add adds to each container-host NIC.",
        ),
    ] = 64,
    controller_pid: Annotated[
        int | None,
        typer.Option(
            metavar="PID",
            help="Process id of the --controller on this machine, to report its CPU time per "
            "phase (a controller the benchmark starts is measured anyway).",
        ),
    ] = None,
) -> None:
    """Measure throughput and latency of PUT, GET and GET-all, and of NIC creation with MAC
    and IP allocation, under concurrent clients."""
    from controller.bench import api as bench
    from controller.bench.common import BenchError

    try:
        options = bench.Options(
            clients=clients,
            requests=requests,
            list_size=list_size,
            keep=keep,
            phases=tuple(phase) if phase else bench.PHASES,
            configs_per_nic=configs_per_nic,
            controller_pid=controller_pid,
            database_url=Settings().resolved_database_url(),
        )
        report = bench.run(controller, options, log=lambda line: typer.echo(line, err=True))
    except BenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(report) if json_output else bench.format_report(report))


@bench_app.command("convergence")
def bench_convergence(
    controller: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="A running controller on the configured database; default: start one.",
        ),
    ] = None,
    agents: Annotated[
        int, typer.Option(min=1, metavar="N", help="Servers, each with a simulated agent.")
    ] = 100,
    endpoints: Annotated[
        int, typer.Option(min=1, metavar="N", help="Endpoints spread over them.")
    ] = 10_000,
    changes: Annotated[
        int, typer.Option(min=1, metavar="N", help="Timed changes of each kind.")
    ] = 50,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    scenario: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="default: ACL and endpoint changes; lb: DIP changes and failed probes of "
            "load balancers (uses --vips, not --endpoints).",
        ),
    ] = "default",
    vips: Annotated[
        int, typer.Option(min=1, metavar="N", help="lb scenario: load balancers of 10 DIPs each.")
    ] = 100,
) -> None:
    """Time a northbound change until every affected simulated agent has acknowledged it."""
    from controller.bench import convergence, lb
    from controller.bench.common import BenchError

    settings = Settings()
    log = lambda line: typer.echo(line, err=True)  # noqa: E731
    try:
        if scenario == "lb":
            lb_options = lb.Options(agents=agents, vips=vips, changes=changes)
            report = lb.run(controller, settings.resolved_database_url(), lb_options, log=log)
        elif scenario == "default":
            options = convergence.Options(agents=agents, endpoints=endpoints, changes=changes)
            report = convergence.run(controller, settings.resolved_database_url(), options, log=log)
        else:
            typer.echo(f"error: no scenario '{scenario}' (default, lb)", err=True)
            raise typer.Exit(2)
    except BenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    text = json.dumps(report) if json_output else json.dumps(report, indent=2)
    typer.echo(text)


@bench_app.command("agent")
def bench_agent(
    endpoints: Annotated[
        int, typer.Option(min=1, metavar="N", help="Local endpoints on the host.")
    ] = 250,
    samples: Annotated[
        int, typer.Option(min=1, metavar="N", help="Timed changes of each kind.")
    ] = 20,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Time the reference Linux agent on one host in a network namespace (root)."""
    from controller.bench import agent
    from controller.bench.common import BenchError

    try:
        report = agent.run(
            agent.Options(endpoints=endpoints, samples=samples),
            log=lambda line: typer.echo(line, err=True),
        )
    except BenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(report) if json_output else json.dumps(report, indent=2))


@bench_app.command("agent-lb")
def bench_agent_lb(
    vips: Annotated[int, typer.Option(min=1, metavar="N", help="Load-balancing rules.")] = 1000,
    dips: Annotated[int, typer.Option(min=1, metavar="N", help="DIPs per rule.")] = 10,
    samples: Annotated[
        int, typer.Option(min=1, metavar="N", help="Timed DIP changes (each out, then back).")
    ] = 20,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Time the reference Linux agent's load balancing: VIPs of DIPs on one host (root)."""
    from controller.bench import agent_lb
    from controller.bench.common import BenchError

    try:
        report = agent_lb.run(
            agent_lb.Options(vips=vips, dips=dips, samples=samples),
            log=lambda line: typer.echo(line, err=True),
        )
    except BenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(report) if json_output else json.dumps(report, indent=2))


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
