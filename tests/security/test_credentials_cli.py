"""``sdnc token`` and ``sdnc cert`` as an operator runs them: the token is printed once and
only its hash is stored; a revoked one no longer lists; bad input is refused with the reason."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.support.pki import CertificateAuthority


def _sdnc(tmp_path: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "controller", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "SDNC_DATA_DIR": str(tmp_path), "SDNC_LOG_LEVEL": "error"},
        check=False,
    )
    assert (result.returncode == 0) is ok, result.stderr
    return result


def test_tokens_are_shown_once_and_stored_hashed(tmp_path: Path) -> None:
    _sdnc(tmp_path, "db", "upgrade")
    token = _sdnc(tmp_path, "token", "create", "ci", "--role", "Operator", "--expires", "30d")
    secret = token.stdout.strip()
    assert secret.startswith("sdnc_")
    assert len(secret) >= 40
    listed = _sdnc(tmp_path, "token", "list").stdout
    assert listed.startswith("ci\toperator\tsdnc_")
    assert secret not in listed
    dump = "\n".join(sqlite3.connect(tmp_path / "controller.db").iterdump())
    assert secret not in dump
    again = _sdnc(tmp_path, "token", "create", "CI", "--role", "reader", ok=False)
    assert "already" in again.stderr
    assert "no role" in _sdnc(tmp_path, "token", "create", "x", "--role", "root", ok=False).stderr
    assert (
        "no duration"
        in _sdnc(
            tmp_path, "token", "create", "x", "--role", "reader", "--expires", "soon", ok=False
        ).stderr
    )
    _sdnc(tmp_path, "token", "revoke", "ci")
    assert _sdnc(tmp_path, "token", "list").stdout == ""
    assert "no token named" in _sdnc(tmp_path, "token", "revoke", "ci", ok=False).stderr


def test_certificates_are_allowed_by_thumbprint_or_subject(tmp_path: Path) -> None:
    _sdnc(tmp_path, "db", "upgrade")
    issued = CertificateAuthority(tmp_path).client("scvmm", "scvmm.contoso.test")
    spaced = " ".join(issued.thumbprint[i : i + 2] for i in range(0, 40, 2)).lower()
    _sdnc(tmp_path, "cert", "allow", spaced, "--role", "operator")
    _sdnc(tmp_path, "cert", "allow", "cn=monitor, o=Contoso", "--role", "reader")
    listed = _sdnc(tmp_path, "cert", "list").stdout.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [
        ["subject:CN=monitor,O=Contoso", "reader"],
        [f"thumbprint:{issued.thumbprint}", "operator"],
    ]
    assert "neither" in _sdnc(tmp_path, "cert", "allow", "xyz", "--role", "admin", ok=False).stderr
    _sdnc(tmp_path, "cert", "revoke", issued.thumbprint)
    _sdnc(tmp_path, "cert", "revoke", "CN=monitor,O=Contoso")
    assert _sdnc(tmp_path, "cert", "list").stdout == ""
