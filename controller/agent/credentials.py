"""How the agent proves who it is and checks whom it talks to.

* The token comes from a file (``--token-file``) or the environment (``SDNC_AGENT_TOKEN``), so
  it never shows in the process list (``--token`` still works, with a warning).
* Over TLS (``https://`` controllers, the channel is then ``wss://``) the controller's
  certificate is verified against ``--ca-file`` (default: the system's CAs); the agent may
  present a client certificate naming its server (``--cert-file``/``--key-file``).
* The token is a bearer secret: the agent refuses to send it in clear (``http://``) to any
  controller that is not on this machine, unless told ``--insecure``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from controller.core.hosts import is_loopback

TOKEN_VARIABLE = "SDNC_AGENT_TOKEN"


class CredentialError(Exception):
    """The agent's credentials cannot be used as given (the message says why)."""


@dataclass(frozen=True)
class TlsOptions:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


def client_context(options: TlsOptions) -> ssl.SSLContext:
    """The context the agent's ``wss://`` connections use: TLS 1.2 at least, the controller's
    certificate checked (chain and name), the agent's certificate presented if given."""
    if (options.cert_file is None) != (options.key_file is None):
        raise CredentialError("--cert-file and --key-file go together")
    try:
        context = ssl.create_default_context(
            cafile=str(options.ca_file) if options.ca_file is not None else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if options.cert_file is not None and options.key_file is not None:
            context.load_cert_chain(options.cert_file, options.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise CredentialError(f"cannot use the TLS files: {exc}") from exc
    return context


def read_token(
    token_file: Path | None, environ: Mapping[str, str] = os.environ, given: str | None = None
) -> str | None:
    """The agent token: from ``token_file``, else ``given`` (the command line), else the
    environment; None when there is none (the agent then relies on its certificate)."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise CredentialError(f"cannot read the token file: {exc}") from exc
        if not token:
            raise CredentialError(f"the token file {token_file} is empty")
        return token
    if given:
        return given
    return environ.get(TOKEN_VARIABLE, "").strip() or None


def cleartext_problem(controllers: Sequence[str], *, has_token: bool, insecure: bool) -> str | None:
    """Why sending the token to ``controllers`` would expose it, or None."""
    if not has_token or insecure:
        return None
    for url in controllers:
        parts = urlsplit(url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            return (
                f"refusing to send the agent token in clear text to {url}: use https:// (with "
                "--ca-file), or give --insecure to accept the risk"
            )
    return None
