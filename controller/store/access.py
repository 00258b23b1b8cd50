"""Northbound credentials: API tokens by the hash of the token, allowed client certificates
by thumbprint or subject."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.store.tables import ApiToken, ClientCertificate

TOKENS = cast(Table, ApiToken.__table__)
CERTIFICATES = cast(Table, ClientCertificate.__table__)


@dataclass(frozen=True)
class TokenRow:
    name: str
    role: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class CertificateRow:
    identity: str
    role: str
    created_at: datetime


class AccessRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def add_token(self, row: TokenRow, token_hash: str) -> bool:
        """False when a token of that name exists already."""
        exists = await self.connection.scalar(
            select(TOKENS.c.name_key).where(TOKENS.c.name_key == row.name.lower())
        )
        if exists is not None:
            return False
        await self.connection.execute(
            insert(TOKENS).values(
                name_key=row.name.lower(),
                name=row.name,
                role=row.role,
                token_hash=token_hash,
                prefix=row.prefix,
                created_at=row.created_at,
                expires_at=row.expires_at,
            )
        )
        return True

    async def token_by_hash(self, token_hash: str) -> TokenRow | None:
        query = select(*_TOKEN_COLUMNS).where(TOKENS.c.token_hash == token_hash)
        row = (await self.connection.execute(query)).first()
        return None if row is None else TokenRow(*row)

    async def tokens(self) -> list[TokenRow]:
        query = select(*_TOKEN_COLUMNS).order_by(TOKENS.c.name_key)
        return [TokenRow(*row) for row in await self.connection.execute(query)]

    async def remove_token(self, name: str) -> bool:
        result = await self.connection.execute(
            delete(TOKENS).where(TOKENS.c.name_key == name.lower())
        )
        return result.rowcount > 0

    async def allow_certificate(self, row: CertificateRow) -> None:
        """Allow ``row.identity`` with ``row.role`` (replacing the role it had)."""
        changed = await self.connection.execute(
            update(CERTIFICATES)
            .where(CERTIFICATES.c.identity == row.identity)
            .values(role=row.role)
        )
        if changed.rowcount == 0:
            await self.connection.execute(
                insert(CERTIFICATES).values(
                    identity=row.identity, role=row.role, created_at=row.created_at
                )
            )

    async def certificate_roles(self, identities: list[str]) -> list[str]:
        query = select(CERTIFICATES.c.role).where(CERTIFICATES.c.identity.in_(identities))
        return [row[0] for row in await self.connection.execute(query)]

    async def certificates(self) -> list[CertificateRow]:
        query = select(
            CERTIFICATES.c.identity, CERTIFICATES.c.role, CERTIFICATES.c.created_at
        ).order_by(CERTIFICATES.c.identity)
        return [CertificateRow(*row) for row in await self.connection.execute(query)]

    async def remove_certificate(self, identity: str) -> bool:
        result = await self.connection.execute(
            delete(CERTIFICATES).where(CERTIFICATES.c.identity == identity)
        )
        return result.rowcount > 0


_TOKEN_COLUMNS = (
    TOKENS.c.name,
    TOKENS.c.role,
    TOKENS.c.prefix,
    TOKENS.c.created_at,
    TOKENS.c.expires_at,
)
