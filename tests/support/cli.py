"""Running ``sdnc`` client commands in the test process (their HTTP goes over a real socket to
the controller the test started)."""

from __future__ import annotations

from dataclasses import dataclass

from typer.testing import CliRunner

from controller.cli import app


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def sdnc(base_url: str, *args: str, stdin: str | None = None, token: str | None = None) -> Outcome:
    """``sdnc ARGS`` with ``SDNC_URL`` naming ``base_url`` (and ``SDNC_TOKEN`` = ``token``)."""
    env = {"SDNC_URL": base_url, "SDNC_TOKEN": token or "", "COLUMNS": "200"}
    result = CliRunner().invoke(app, list(args), input=stdin, env=env, catch_exceptions=False)
    return Outcome(result.exit_code, result.stdout, result.stderr)
