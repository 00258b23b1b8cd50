"""How a client certificate is named in the allow-list: by its SHA-1 thumbprint in upper-case
hex (as Windows' certificate store and ``Get-ChildItem Cert:`` show it) or by its subject, a
distinguished name in RFC 4514 form (``CN=portal,O=Contoso``).

An allow-list entry is stored as ``thumbprint:HEX`` or ``subject:DN``, the DN rewritten in one
canonical spelling, so that ``cn=portal, o=Contoso`` and ``CN=portal,O=Contoso`` are one entry
and match the certificate whatever spacing or attribute casing the operator typed.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Mapping
from typing import Any

from cryptography import x509

_HEX = re.compile(r"^[0-9A-Fa-f]{40}$")
_SEPARATORS = re.compile(r"[\s:]")
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


def client_certificate(scope: Mapping[str, Any]) -> bytes | None:
    """The DER of the verified client certificate of an ASGI request or WebSocket (the ``tls``
    extension the server adds), None without one."""
    tls = (scope.get("extensions") or {}).get("tls")
    if not tls or not tls.get("client_cert_chain"):
        return None
    return ssl.PEM_cert_to_DER_cert(tls["client_cert_chain"][0])


def host_names(der: bytes) -> list[str]:
    """The names a host certificate gives its host: its subject's common names and its DNS
    subject alternative names."""
    certificate = x509.load_der_x509_certificate(der)
    names = [
        str(attribute.value)
        for attribute in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    ]
    try:
        alternatives = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return names
    return names + alternatives.value.get_values_for_type(x509.DNSName)


def thumbprint(der: bytes) -> str:
    return hashlib.sha1(der).hexdigest().upper()


def certificate_identities(der: bytes) -> list[str]:
    """The allow-list entries that would admit the certificate ``der``."""
    subject = x509.load_der_x509_certificate(der).subject
    return [f"thumbprint:{thumbprint(der)}", f"subject:{subject.rfc4514_string()}"]


def identity_of(text: str) -> str:
    """The allow-list entry an operator means by ``text`` (a thumbprint, with or without the
    spaces or colons some tools print, or a subject); ValueError says why it is neither."""
    compact = _SEPARATORS.sub("", text)
    if _HEX.match(compact):
        return f"thumbprint:{compact.upper()}"
    if "=" not in text:
        raise ValueError(
            f"'{text}' is neither a SHA-1 thumbprint (40 hex digits) nor a subject (CN=...)"
        )
    try:
        name = x509.Name.from_rfc4514_string(_tidy(text))
    except ValueError as exc:
        raise ValueError(f"'{text}' is not a distinguished name: {exc}") from exc
    if not name.rdns:
        raise ValueError(f"'{text}' names no attribute")
    return f"subject:{name.rfc4514_string()}"


def _tidy(text: str) -> str:
    """``cn=portal, o=Contoso`` as the RFC 4514 parser takes it: attribute types upper-case,
    no spaces around the separators (Windows shows subjects with ``, ``)."""
    parts = []
    for part in _UNESCAPED_COMMA.split(text.strip()):
        attribute, _, value = part.partition("=")
        parts.append(f"{attribute.strip().upper()}={value.strip()}")
    return ",".join(parts)
