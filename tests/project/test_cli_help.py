"""What a newcomer reads first: ``sdnc --help`` and the README's settings table."""

from __future__ import annotations

import re
from pathlib import Path

import click
import typer.main
from typer.testing import CliRunner

from controller.cli import app
from controller.settings import Settings

README = Path(__file__).parents[2] / "README.md"
VARIABLES = [f"SDNC_{name.upper()}" for name in Settings.model_fields]


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if isinstance(command, click.Group) or hasattr(command, "commands"):
        for name, sub in command.commands.items():  # type: ignore[attr-defined]
            found += _commands(sub, (*path, name))
    return found


def _help(*path: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.output


def test_options_show_what_they_take_not_python_types() -> None:
    commands = _commands(typer.main.get_command(app))
    assert ("serve",) in commands
    assert ("get",) in commands
    for path in commands:
        text = _help(*path)
        for line in text.splitlines():
            # Options (-o, --output FORMAT) and positional arguments (KIND, ID) alike.
            if re.match(r"\s+((-\w, )?--|[A-Z_]+\s)", line):
                tag = re.search(r"<[a-z][a-z\[\]|, ]*>", line)
                assert tag is None, f"sdnc {' '.join(path)} --help: {line.strip()}"
        assert "<bool>" not in text
        assert "<list[" not in text
        assert "<str>" not in text


def test_usage_lines_name_arguments_in_capitals_without_braces() -> None:
    commands = _commands(typer.main.get_command(app))
    for path in commands:
        usage = _help(*path).splitlines()[0]
        assert "{" not in usage, usage
        arguments = usage.split("[OPTIONS]")[-1].split()
        for argument in arguments:
            assert argument.strip("[].").isupper(), f"sdnc {' '.join(path)}: {usage}"
    assert _help("get").splitlines()[0].endswith(" get [OPTIONS] KIND [ID]")


def test_serve_help_names_every_setting_with_its_default() -> None:
    text = _help("serve")
    for variable in VARIABLES:
        assert variable in text, variable
    assert "[env var: SDNC_PORT; default: (8080)]" in " ".join(text.split())


def test_agent_token_says_it_reads_the_controllers_database() -> None:
    assert "SDNC_DATABASE_URL" in _help("agent-token")


def test_the_readme_settings_table_lists_every_setting() -> None:
    rows = {
        name
        for line in README.read_text().splitlines()
        if line.startswith("| `SDNC_")
        for name in re.findall(r"`(SDNC_[A-Z_]+)`", line.split("|")[1])
    }
    assert sorted(set(VARIABLES) - rows) == []
