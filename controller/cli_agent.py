"""``sdnc agent``: the reference Linux host agent's command line (registered by ``cli.py``).

Its credential comes from a file, the environment or (visibly to every user) the command line;
over ``https://`` it verifies the controller and may present a client certificate naming its
server."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from controller.settings import Settings


def configure_logging(settings: Settings) -> None:
    """Log as the settings say (every ``sdnc`` command that runs a service uses this)."""
    from controller import logs

    logs.configure(settings.log_level, settings.log_format)


def agent(
    controller: Annotated[
        list[str],
        typer.Option(
            metavar="URL",
            help="Controller base URL; repeat to give fallbacks (in SDNC_URL: space-separated).",
            envvar="SDNC_URL",
            show_envvar=True,
        ),
    ],
    server: Annotated[
        str,
        typer.Option(
            metavar="ID",
            help="This host's servers resourceId.",
            envvar="SDNC_AGENT_SERVER",
            show_envvar=True,
        ),
    ],
    token: Annotated[
        str | None,
        typer.Option(
            metavar="TOKEN",
            help="The agent token (see `sdnc agent-token`); better in the environment or a "
            "file, where `ps` does not show it.",
            envvar="SDNC_AGENT_TOKEN",
            show_envvar=True,
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="File holding the agent token (see `sdnc agent-token`).",
            envvar="SDNC_AGENT_TOKEN_FILE",
            show_envvar=True,
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Verify https:// controllers against this CA, PEM."),
    ] = None,
    cert_file: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Client certificate naming this server, PEM."),
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Its private key, PEM.")
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure", help="Allow sending the token in clear to a non-loopback controller."
        ),
    ] = False,
    provider_address: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="This host's provider (underlay) address.",
            envvar="SDNC_AGENT_PROVIDER_ADDRESS",
            show_envvar=True,
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Where applied state is kept; default /var/lib/sdnc-agent/SERVER.",
            envvar="SDNC_AGENT_STATE_DIR",
            show_envvar=True,
        ),
    ] = None,
    resync_interval: Annotated[
        float, typer.Option(min=0.1, metavar="SECONDS", help="Seconds between drift repairs.")
    ] = 10.0,
) -> None:
    """Run the Linux host agent in this network namespace until SIGTERM (which leaves the
    data plane in place). The token may also come from SDNC_AGENT_TOKEN."""
    import asyncio

    from controller.agent.credentials import (
        CredentialError,
        TlsOptions,
        cleartext_problem,
        client_context,
        read_token,
    )
    from controller.agent.linux.daemon import Options, run_agent

    configure_logging(Settings())
    try:
        secret = read_token(token_file, given=token)
        tls = None
        if any(url.startswith("https:") for url in controller):
            tls = client_context(TlsOptions(ca_file, cert_file, key_file))
        problem = cleartext_problem(controller, has_token=secret is not None, insecure=insecure)
        if secret is None and cert_file is None:
            problem = "no credentials: give --token-file (or SDNC_AGENT_TOKEN) or --cert-file"
    except CredentialError as exc:
        problem = str(exc)
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    if token and token != os.environ.get("SDNC_AGENT_TOKEN"):  # given on the command line
        logging.getLogger(__name__).warning(
            "--token shows the agent token to every user of this host: use --token-file"
        )
    options = Options(
        controllers=controller,
        server=server,
        token=secret,
        tls=tls,
        provider_address=provider_address,
        state_dir=state_dir or Path("/var/lib/sdnc-agent") / server,
        resync_interval=resync_interval,
    )
    asyncio.run(run_agent(options))


def agent_teardown(
    server: Annotated[
        str,
        typer.Option(
            metavar="ID",
            help="The servers resourceId the agent ran as.",
            envvar="SDNC_AGENT_SERVER",
            show_envvar=True,
        ),
    ],
    state_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="The agent's state directory; default /var/lib/sdnc-agent/SERVER.",
            envvar="SDNC_AGENT_STATE_DIR",
            show_envvar=True,
        ),
    ] = None,
) -> None:
    """Remove what an agent built on this host (stop it first): its endpoint and router
    namespaces, with their devices and rulesets, then its state directory. Run it in the
    network namespace the agent ran in."""
    import asyncio

    from controller.agent.linux.daemon import tear_down

    configure_logging(Settings())
    remaining = asyncio.run(tear_down(server, state_dir or Path("/var/lib/sdnc-agent") / server))
    if remaining:
        typer.echo(f"error: these namespaces remain: {' '.join(remaining)}", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed what the agent of {server} built")
