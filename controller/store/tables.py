"""The relational schema. Alembic migrations in ``migrations/`` build exactly this.

Every NBI resource, top-level or child, is one row of ``resources``; its properties are a JSON
document. References between resources are rows of ``resource_references`` with real foreign
keys, so the database itself refuses to delete a referenced resource even under races.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Autoincrementing 64-bit keys; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A moment, written in UTC and read back with its zone: SQLite keeps none and would
    hand back a naive datetime (which an API renders as no RFC 3339 date-time, and which
    cannot be compared with an aware one)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


class Resource(Base):
    """One NBI resource. ``instance_id`` is the resource's NC instanceId."""

    __tablename__ = "resources"
    __table_args__ = (
        # The children of one parent, by kind, in order: the last one's position is one
        # index entry (where a child written alone goes), and the foreign key's cascade
        # finds a parent's children by it.
        Index("ix_resources_children", "parent_id", "kind", "position"),
        # Whether a sibling holds a child's sibling key: one index lookup, not a pass over
        # the siblings' JSON (30 ms for the 10,000 rules of an ACL).
        Index("ix_resources_sibling_key", "parent_id", "sibling_key"),
    )

    instance_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(128), index=True)
    # The resourceRef lower-cased: resource paths compare case-insensitively.
    path_key: Mapped[str] = mapped_column(String(1024), unique=True)
    resource_ref: Mapped[str] = mapped_column(String(1024))
    resource_id: Mapped[str] = mapped_column(String(256))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("resources.instance_id", ondelete="CASCADE")
    )
    # The top-level resource of the aggregate; a top-level resource points at itself.
    root_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("resources.instance_id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The values of the kind's sibling key (``Kind.sibling_key``) as JSON text, on children
    # of kinds that have one (an aclRule: its direction and priority).
    sibling_key: Mapped[str | None] = mapped_column(String(256))
    secret: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    tags: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    resource_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Set on top-level rows; children show their root's etag.
    etag: Mapped[str | None] = mapped_column(String(64))
    provisioning_state: Mapped[str] = mapped_column(String(16), default="Succeeded")
    # Change-log revision of the aggregate's last write (on top-level rows).
    revision: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ResourceReference(Base):
    """``source`` refers to ``target`` through the property path ``member``."""

    __tablename__ = "resource_references"
    __table_args__ = (UniqueConstraint("source_id", "member", "target_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("resources.instance_id", ondelete="CASCADE")
    )
    member: Mapped[str] = mapped_column(String(256))
    # No ON DELETE action: deleting a referenced resource fails at the database.
    target_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("resources.instance_id"), index=True
    )


class MacAllocation(Base):
    """A MAC held by a network interface (``owner_id``): drawn from a macPool (Dynamic) or
    chosen by the client (Static; ``pool_id`` set when it lies in a pool). The key makes a MAC
    unique across the deployment."""

    __tablename__ = "mac_allocations"

    mac: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    pool_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("resources.instance_id", ondelete="SET NULL"), index=True
    )
    owner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("resources.instance_id", ondelete="CASCADE"), unique=True
    )


class VsidAllocation(Base):
    """The VxLAN VNI / virtual subnet id of a virtual subnet, unique across the deployment."""

    __tablename__ = "vsid_allocations"

    vsid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    subnet_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("resources.instance_id", ondelete="CASCADE"), unique=True
    )


class IpAllocation(Base):
    """An address of a subnet (virtual or logical) held by an ipConfiguration. ``address`` is
    the integer value as 32 hex digits, so ordering by it orders addresses."""

    __tablename__ = "ip_allocations"

    subnet_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("resources.instance_id", ondelete="CASCADE"), primary_key=True
    )
    address: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("resources.instance_id", ondelete="CASCADE"), unique=True
    )


class AllocationReservation(Base):
    """A value an allocator of PostgreSQL has set aside, in a short transaction of its own,
    for a write that has yet to commit (service/reservations.py). The write's transaction
    deletes its reservations as it inserts the allocations; a write that fails has them
    deleted after it; a live one (``expires_at`` ahead) keeps other allocators off the value,
    an expired one (its writer's process died) does not. ``value`` is the number as 32 hex
    digits whatever the numbering, so ordering by it orders values; ``scope_id`` is the
    subnet of an address, and the nil UUID for a deployment-wide numbering (MACs)."""

    __tablename__ = "allocation_reservations"

    numbering: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    value: Mapped[str] = mapped_column(String(32), primary_key=True)
    token: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class RevisionCounter(Base):
    """The single row whose update, as the last statement of every write, hands out change-log
    revisions in commit order (its row lock is held until the commit)."""

    __tablename__ = "revision_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)
    # Whether a write may be recorded as what it changed (a patch) rather than its whole
    # aggregate: only once every replica follows patches. A database created by a version
    # that writes them allows them at once; one upgraded from an earlier version once
    # ``sdnc db finish-upgrade`` ran, after the last replica of that version stopped.
    patches: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Change(Base):
    """One committed write of an aggregate: its documents after the write (None if deleted)."""

    __tablename__ = "change_log"

    revision: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    root_kind: Mapped[str] = mapped_column(String(128))
    document: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AgentStatus(Base):
    """What the host agent of a server last reported, and where it is connected."""

    __tablename__ = "agent_status"

    server_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("resources.instance_id", ondelete="CASCADE"), primary_key=True
    )
    replica: Mapped[str] = mapped_column(String(64))
    connected: Mapped[bool] = mapped_column(Boolean)
    applied_revision: Mapped[int] = mapped_column(BigInteger)
    failures: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    provider_address: Mapped[str | None] = mapped_column(String(64))
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    # When the connection this row describes was accepted. A row is only overwritten by its own
    # connection or a newer one, so a replica that wakes from a stall cannot mark disconnected
    # an agent that has moved on to another replica.
    connected_since: Mapped[datetime] = mapped_column(UtcDateTime())


class ControllerSecret(Base):
    """Deployment-wide secrets every replica shares (the agent token key)."""

    __tablename__ = "controller_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class DiagnosticResult(Base):
    """The result of a diagnostics operation (``PUT /diagnostics/slbState``), kept so that any
    replica answers its GET, until it expires."""

    __tablename__ = "diagnostic_results"

    operation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class DipHealthReport(Base):
    """The latest health of a DIP (ipConfiguration) under a probe, as the host running the
    probe reported it. It goes with the DIP, the probe and the reporting server (a server
    declared gone takes its reports with it; a disconnected one keeps them)."""

    __tablename__ = "dip_health"

    probe_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("resources.instance_id", ondelete="CASCADE"), primary_key=True
    )
    dip_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("resources.instance_id", ondelete="CASCADE"), primary_key=True
    )
    server_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("resources.instance_id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(16))
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ApiToken(Base):
    """A northbound API token: only its SHA-256 is kept, never the token."""

    __tablename__ = "api_tokens"

    # The name lower-cased: names compare case-insensitively.
    name_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The token's first characters, so that an operator can tell which one a client holds.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ClientCertificate(Base):
    """A client certificate allowed in, by its thumbprint (``thumbprint:HEX``) or its subject
    (``subject:CN=...``), and the role it gets."""

    __tablename__ = "client_certificates"

    identity: Mapped[str] = mapped_column(String(1024), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AuditEvent(Base):
    """One recorded event: a write, a denied request or a credential change. Never a secret:
    no body, no header, no credential value."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    # Who (token:NAME, subject:CN=..., oidc:NAME, anonymous, local:USER), None if unknown.
    principal: Mapped[str | None] = mapped_column(String(512), index=True)
    # How they proved it: token, x509, oidc, none, cli.
    auth_method: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(2048))
    # The path lower-cased, for filtering: resource paths compare case-insensitively.
    path_key: Mapped[str] = mapped_column(String(2048))
    status: Mapped[int] = mapped_column(Integer)
    etag_before: Mapped[str | None] = mapped_column(String(64))
    etag_after: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    # What was decided (the error code of a denial, the credential change made).
    outcome: Mapped[str | None] = mapped_column(String(256))
