"""The architecture is checked by a machine: import-linter contracts from pyproject.toml, plus
rules import-linter cannot express."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "controller"


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_pure_core_has_no_clock_settings_or_io() -> None:
    """The resource model and validators are pure functions of their inputs."""
    banned = {"datetime", "time", "os", "subprocess", "socket", "random", "logging"}
    for folder in ("core", "resources", "policy"):
        for path in (PACKAGE / folder).rglob("*.py"):
            used = {name.split(".")[0] for name in _imports(path)} & banned
            assert not used, f"{path.relative_to(ROOT)} imports {sorted(used)}"


def test_only_the_store_commits() -> None:
    """Transactions belong to Database.run; nothing else commits or rolls back."""
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "store":
            continue
        text = path.read_text()
        assert ".commit(" not in text, path.relative_to(ROOT)
        assert ".rollback(" not in text, path.relative_to(ROOT)


def test_modules_stay_small() -> None:
    for path in PACKAGE.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 450, f"{path.relative_to(ROOT)} has {lines} lines; split it"
