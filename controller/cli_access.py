"""``sdnc token ...`` and ``sdnc cert ...``: the northbound credentials, managed on the
controller's database (run them where ``sdnc serve``'s settings are)."""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, TypeVar

import typer

from controller.cli_style import command_group
from controller.core.roles import Role, parse_role
from controller.errors import ControllerError
from controller.service.access import AccessService, Actor, Principal
from controller.settings import Settings
from controller.store.database import Database

T = TypeVar("T")
token_app = command_group(help="Northbound API tokens.")
cert_app = command_group(help="Client certificates allowed in (x509).")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w``."""
    match = _DURATION.match(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise typer.BadParameter(f"'{text}' is no duration: a positive number then s, m, h, d, w")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _actor() -> Actor:
    """Whoever runs the command, as the audit log names them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return Actor(Principal(f"local:{user}", Role.ADMIN, "cli"), socket.gethostname())


def _role(text: str) -> Role:
    try:
        return parse_role(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


RoleOption = Annotated[
    Role, typer.Option(parser=_role, metavar="ROLE", help="reader, operator or admin.")
]


def _run(work: Callable[[AccessService], Awaitable[T]]) -> T:
    async def main() -> T:
        database = Database(Settings().resolved_database_url())
        try:
            return await work(AccessService(database))
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except ControllerError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc


@token_app.command("create")
def token_create(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="A name to tell the token by (and revoke it).")
    ],
    role: RoleOption,
    expires: Annotated[
        str | None,
        typer.Option(metavar="DURATION", help="Lifetime: 12h, 30d, ...; default: until revoked."),
    ] = None,
) -> None:
    """Create a token and print it. It is shown this once: only its hash is kept."""
    lifetime = None if expires is None else parse_duration(expires)
    info, token = _run(lambda access: access.create_token(name, role, lifetime, actor=_actor()))
    typer.echo(token)
    until = "until revoked" if info.expires_at is None else f"until {info.expires_at.isoformat()}"
    typer.echo(f"token '{info.name}' ({info.role.value}), valid {until}", err=True)


@token_app.command("list")
def token_list() -> None:
    """The tokens: name, role, first characters, created, expires."""
    for info in _run(lambda access: access.tokens()):
        expires = info.expires_at.isoformat() if info.expires_at else "never"
        typer.echo(
            f"{info.name}\t{info.role.value}\t{info.prefix}...\t"
            f"{info.created_at.isoformat()}\t{expires}"
        )


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The token's name.")],
) -> None:
    """Revoke a token: from now on it authenticates nobody."""
    _run(lambda access: access.revoke_token(name, actor=_actor()))
    typer.echo(f"token '{name}' revoked", err=True)


@cert_app.command("allow")
def cert_allow(
    certificate: Annotated[
        str,
        typer.Argument(
            metavar="CERTIFICATE", help="SHA-1 thumbprint (hex) or subject (CN=...,O=...)."
        ),
    ],
    role: RoleOption,
) -> None:
    """Allow a client certificate (signed by the client CA) in, with a role."""
    rule = _run(lambda access: access.allow_certificate(certificate, role, actor=_actor()))
    typer.echo(f"allowed {rule.identity} as {rule.role.value}")


@cert_app.command("list")
def cert_list() -> None:
    """The certificates allowed in and their roles."""
    for rule in _run(lambda access: access.certificates()):
        typer.echo(f"{rule.identity}\t{rule.role.value}\t{rule.created_at.isoformat()}")


@cert_app.command("revoke")
def cert_revoke(
    certificate: Annotated[
        str, typer.Argument(metavar="CERTIFICATE", help="The thumbprint or subject allowed.")
    ],
) -> None:
    """Stop allowing a client certificate in."""
    _run(lambda access: access.revoke_certificate(certificate, actor=_actor()))
    typer.echo(f"no longer allowed: {certificate}", err=True)
