"""Who a northbound request comes from: API tokens and allowed client certificates.

A token is 256 random bits behind the prefix ``sdnc_``; only its SHA-256 is stored (a token
is no password: it has enough entropy that a fast hash is safe, and a lookup by hash needs no
per-row salt). ``create_token`` returns the token once; nothing can show it again. A token may
expire; an expired or removed one authenticates nobody.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from controller.core.roles import Role, allows
from controller.errors import Conflict, InvalidInput, NotFound
from controller.service.identities import certificate_identities, identity_of
from controller.store import audit
from controller.store.access import AccessRepository, CertificateRow, TokenRow
from controller.store.audit import AuditRow
from controller.store.database import Database

TOKEN_PREFIX = "sdnc_"
# What a client may send as a token at most; anything longer is not one of ours.
MAX_TOKEN_LENGTH = 256
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Where credential changes appear in the audit log.
TOKENS_PATH = "/admin/v1/tokens"
CERTIFICATES_PATH = "/admin/v1/certificates"


@dataclass(frozen=True)
class Principal:
    """Who made a request, how they proved it (``token``, ``x509``, ``oidc``, ``none``) and
    their role."""

    name: str
    role: Role
    method: str


@dataclass(frozen=True)
class Actor:
    """Who changes a credential, for the audit log: ``local:USER`` on the command line."""

    principal: Principal
    source: str | None = None


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: Role
    prefix: str
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class CertificateRule:
    identity: str  # thumbprint:HEX or subject:DN
    role: Role
    created_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccessService:
    def __init__(
        self, database: Database, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.database = database
        self.clock = clock

    # -- tokens --------------------------------------------------------------------------------

    async def _audit(
        self,
        connection: AsyncConnection,
        actor: Actor | None,
        change: tuple[str, str, int],
        outcome: str,
    ) -> None:
        """Record a credential change in the transaction that makes it."""
        if actor is None:
            return
        method, path, status = change
        row = AuditRow(
            at=self.clock(),
            principal=actor.principal.name,
            auth_method=actor.principal.method,
            source=actor.source,
            method=method,
            path=path,
            status=status,
            outcome=outcome,
        )
        await audit.append(connection, row, is_postgres=self.database.is_postgres)

    async def create_token(
        self,
        name: str,
        role: Role,
        expires_in: timedelta | None = None,
        *,
        actor: Actor | None = None,
    ) -> tuple[TokenInfo, str]:
        """A new token named ``name``: its description, and the token (shown this once)."""
        if not _NAME.match(name):
            raise InvalidInput(
                f"'{name}' is no token name: 1 to 64 letters, digits, '.', '_' or '-'",
                target="name",
            )
        if expires_in is not None and expires_in <= timedelta(0):
            raise InvalidInput("a token's lifetime must be positive", target="expires")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        row = TokenRow(
            name=name,
            role=role.value,
            prefix=token[: len(TOKEN_PREFIX) + 6],
            created_at=now,
            expires_at=None if expires_in is None else now + expires_in,
        )

        async def work(connection: AsyncConnection) -> bool:
            added = await AccessRepository(connection).add_token(row, token_hash(token))
            if added:
                until = "never" if row.expires_at is None else row.expires_at.isoformat()
                change = ("POST", f"{TOKENS_PATH}/{name}", 201)
                await self._audit(connection, actor, change, f"token {role} expires {until}")
            return added

        if not await self.database.run(work):
            raise Conflict(f"a token named '{name}' exists already", target="name")
        return _token_info(row), token

    async def tokens(self) -> list[TokenInfo]:
        async def work(connection: AsyncConnection) -> list[TokenRow]:
            return await AccessRepository(connection).tokens()

        return [_token_info(row) for row in await self.database.run(work, write=False)]

    async def revoke_token(self, name: str, *, actor: Actor | None = None) -> None:
        async def work(connection: AsyncConnection) -> bool:
            removed = await AccessRepository(connection).remove_token(name)
            if removed:
                change = ("DELETE", f"{TOKENS_PATH}/{name}", 204)
                await self._audit(connection, actor, change, "token revoked")
            return removed

        if not await self.database.run(work):
            raise NotFound(f"no token named '{name}'", target="name")

    async def token_principal(self, token: str) -> Principal | None:
        """Whom ``token`` authenticates, None if nobody (unknown, removed or expired)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
            return None

        async def work(connection: AsyncConnection) -> TokenRow | None:
            return await AccessRepository(connection).token_by_hash(token_hash(token))

        row = await self.database.run(work, write=False)
        if row is None:
            return None
        if row.expires_at is not None and row.expires_at <= self.clock():
            return None
        return Principal(f"token:{row.name}", Role(row.role), "token")

    # -- client certificates -------------------------------------------------------------------

    async def allow_certificate(
        self, text: str, role: Role, *, actor: Actor | None = None
    ) -> CertificateRule:
        """Allow the certificate ``text`` names (a thumbprint or a subject) with ``role``."""
        try:
            identity = identity_of(text)
        except ValueError as exc:
            raise InvalidInput(str(exc), target="certificate") from exc
        row = CertificateRow(identity, role.value, self.clock())

        async def work(connection: AsyncConnection) -> None:
            await AccessRepository(connection).allow_certificate(row)
            change = ("PUT", f"{CERTIFICATES_PATH}/{identity}", 200)
            await self._audit(connection, actor, change, f"certificate allowed as {role}")

        await self.database.run(work)
        return CertificateRule(identity, role, row.created_at)

    async def certificates(self) -> list[CertificateRule]:
        async def work(connection: AsyncConnection) -> list[CertificateRow]:
            return await AccessRepository(connection).certificates()

        rows = await self.database.run(work, write=False)
        return [CertificateRule(row.identity, Role(row.role), row.created_at) for row in rows]

    async def revoke_certificate(self, text: str, *, actor: Actor | None = None) -> None:
        try:
            identity = identity_of(text)
        except ValueError as exc:
            raise InvalidInput(str(exc), target="certificate") from exc

        async def work(connection: AsyncConnection) -> bool:
            removed = await AccessRepository(connection).remove_certificate(identity)
            if removed:
                change = ("DELETE", f"{CERTIFICATES_PATH}/{identity}", 204)
                await self._audit(connection, actor, change, "certificate no longer allowed")
            return removed

        if not await self.database.run(work):
            raise NotFound(f"'{text}' is not allowed", target="certificate")

    async def certificate_principal(self, der: bytes) -> Principal | None:
        """Whom the verified client certificate ``der`` authenticates: the highest role its
        thumbprint or its subject is allowed, None when neither is."""
        identities = certificate_identities(der)

        async def work(connection: AsyncConnection) -> list[str]:
            return await AccessRepository(connection).certificate_roles(identities)

        roles = [Role(role) for role in await self.database.run(work, write=False)]
        if not roles:
            return None
        best = roles[0]
        for role in roles[1:]:
            if allows(role, best):
                best = role
        return Principal(identities[1], best, "x509")


def _token_info(row: TokenRow) -> TokenInfo:
    return TokenInfo(row.name, Role(row.role), row.prefix, row.created_at, row.expires_at)
