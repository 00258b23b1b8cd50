"""The deployment files: the compose file is valid (checked by ``docker-compose config``, Debian's
package; no Docker engine needed) and builds the image once, the Dockerfile has both images,
the build context leaves local state out, and the systemd units' environment files name only
settings that exist."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer.main
import yaml

from controller.cli import app
from controller.settings import Settings

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy" / "systemd"


def _compose() -> dict[str, object]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose (Debian's package) is missing; scripts/test.sh installs it")
        pytest.skip("docker-compose is not installed")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    for profile in ([], ["--profile", "agent"]):
        result = subprocess.run(
            [tool, "-f", str(ROOT / "docker-compose.yml"), *profile, "config", "--quiet"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr


def test_compose_builds_each_image_once() -> None:
    services = _compose()["services"]
    assert isinstance(services, dict)
    builds = {name: s["build"]["target"] for name, s in services.items() if "build" in s}
    assert builds == {"controller": "controller", "agent": "agent"}
    assert services["controller-replica"]["image"] == services["controller"]["image"]
    assert services["controller-replica"]["pull_policy"] == "never"
    stages = re.findall(r"^FROM \S+ AS (\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert stages == ["base", "agent", "controller"]  # the controller is the default target


def test_the_build_context_leaves_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".sdnc", "*.db"} <= ignored
    for needed in ("pyproject.toml", "README.md", "controller", "migrations"):
        assert needed not in ignored


def _env_file(name: str) -> dict[str, str]:
    lines = (DEPLOY / name).read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return dict(pairs)


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((DEPLOY / name).read_text())
    return unit


def test_the_controller_unit_and_its_settings() -> None:
    unit = _unit("sdnc-controller.service")
    assert unit["Service"]["ExecStart"].endswith("sdnc serve")
    assert unit["Service"]["EnvironmentFile"] == "/etc/sdnc/controller.env"
    known = {f"SDNC_{name.upper()}" for name in Settings.model_fields}
    assert set(_env_file("controller.env")) <= known
    Settings(**{k[5:].lower(): v for k, v in _env_file("controller.env").items()})  # valid


def test_the_agent_unit_and_its_settings() -> None:
    unit = _unit("sdnc-agent.service")
    assert unit["Service"]["ExecStart"].endswith("sdnc agent")
    command = typer.main.get_command(app).commands["agent"]  # type: ignore[attr-defined]
    variables = {param.envvar for param in command.params if param.envvar}
    required = {param.envvar for param in command.params if param.required}
    env = _env_file("agent.env")
    assert required <= set(env)
    assert set(env) <= variables | {"SDNC_LOG_FORMAT", "SDNC_LOG_LEVEL"}
