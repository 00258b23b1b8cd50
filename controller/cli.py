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
    from controller.store import migrate

    settings = Settings()
    _configure_logging(settings.log_level)
    settings.ensure_data_dir()
    url = settings.resolved_database_url()
    migrate.upgrade(url)
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=settings.port if port is None else port,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
        server_header=False,
    )


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
