"""The ``sdnc`` command: the composition root that reads settings and starts things."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from controller.settings import Settings

app = typer.Typer(
    help="SDN network controller with an MS-NCNBI compatible northbound API.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
bench_app = typer.Typer(help="Load benchmarks.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port to listen on.")] = None,
) -> None:
    """Apply pending migrations and serve the northbound API."""
    import uvicorn

    from controller.app import create_app
    from controller.server import build_config, raise_open_files_limit
    from controller.store import migrate

    settings = Settings()
    _configure_logging(settings.log_level)
    settings.ensure_data_dir()
    url = settings.resolved_database_url()
    migrate.upgrade(url)
    raise_open_files_limit()
    config = build_config(
        create_app(settings),
        settings,
        host=host or settings.host,
        port=settings.port if port is None else port,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        raise typer.Exit(3)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all pending migrations to the configured database."""
    from controller.store import migrate

    settings = Settings()
    _configure_logging(settings.log_level)
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
            help="Base URL of a running controller; default: start one on the configured database."
        ),
    ] = None,
    clients: Annotated[int, typer.Option(min=1, help="Concurrent clients.")] = 32,
    requests: Annotated[int, typer.Option(min=1, help="Requests per phase.")] = 5000,
    list_size: Annotated[
        int, typer.Option(min=1, help="logicalNetworks created for the list phase.")
    ] = 50,
    keep: Annotated[bool, typer.Option(help="Keep the resources the benchmark created.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    phase: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only this phase (repeatable): create, get, list, update, nic-create, "
            "nic-child-add. Default: all."
        ),
    ] = None,
    configs_per_nic: Annotated[
        int,
        typer.Option(min=1, help="ipConfigurations nic-child-add adds to each container-host NIC."),
    ] = 64,
    controller_pid: Annotated[
        int | None,
        typer.Option(
            help="Process id of the --controller on this machine, to report its CPU time per "
            "phase (a controller the benchmark starts is measured anyway)."
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
        typer.Option(help="A running controller on the configured database; default: start one."),
    ] = None,
    agents: Annotated[int, typer.Option(min=1, help="Servers, each with a simulated agent.")] = 100,
    endpoints: Annotated[int, typer.Option(min=1, help="Endpoints spread over them.")] = 10_000,
    changes: Annotated[int, typer.Option(min=1, help="Timed changes of each kind.")] = 50,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Time a northbound change until every affected simulated agent has acknowledged it."""
    from controller.bench import convergence
    from controller.bench.common import BenchError

    settings = Settings()
    options = convergence.Options(agents=agents, endpoints=endpoints, changes=changes)
    try:
        report = convergence.run(
            controller,
            settings.resolved_database_url(),
            options,
            log=lambda line: typer.echo(line, err=True),
        )
    except BenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    text = json.dumps(report) if json_output else json.dumps(report, indent=2)
    typer.echo(text)


@app.command("agent-token")
def agent_token(
    server: Annotated[str, typer.Argument(help="The server's resourceId.")],
) -> None:
    """Print the token the host agent of SERVER authenticates with."""
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
        list[str], typer.Option(help="Controller base URL; repeat to give agents fallbacks.")
    ],
    count: Annotated[int, typer.Option(min=1, help="How many servers get an agent.")] = 10,
    provider_network: Annotated[
        str, typer.Option(help="Provider addresses are handed out from this prefix.")
    ] = "10.250.0.0/16",
) -> None:
    """Run simulated host agents (in memory) for the first COUNT servers, until interrupted."""
    import asyncio

    from controller.bench.fleet import run_fleet

    settings = Settings()
    _configure_logging(settings.log_level)
    asyncio.run(run_fleet(settings.resolved_database_url(), controller, count, provider_network))


@app.command()
def agent(
    controller: Annotated[
        list[str], typer.Option(help="Controller base URL; repeat to give fallbacks.")
    ],
    server: Annotated[str, typer.Option(help="This host's servers resourceId.")],
    token: Annotated[str, typer.Option(help="The agent token (see `sdnc agent-token`).")],
    provider_address: Annotated[
        str | None, typer.Option(help="This host's provider (underlay) address.")
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Where applied state is kept; default /var/lib/sdnc-agent/SERVER."),
    ] = None,
    resync_interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between drift repairs.")
    ] = 10.0,
) -> None:
    """Run the Linux host agent in this network namespace until SIGTERM (which leaves the
    data plane in place)."""
    import asyncio

    from controller.agent.linux.daemon import Options, run_agent

    _configure_logging(Settings().log_level)
    options = Options(
        controllers=controller,
        server=server,
        token=token,
        provider_address=provider_address,
        state_dir=state_dir or Path("/var/lib/sdnc-agent") / server,
        resync_interval=resync_interval,
    )
    asyncio.run(run_agent(options))


@app.command()
def openapi(
    output: Annotated[Path | None, typer.Option(help="Write to this file, not stdout.")] = None,
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
