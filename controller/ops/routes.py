"""The operator endpoints (``/healthz``, ``/readyz``, ``/metrics``, ``/southbound/v1/hosts``)
and the request metrics, added to an application by ``install``. They are extensions of ours,
outside the NBI's ``/networking`` tree, documented in the OpenAPI document under the
``operations`` tag."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from controller.api.responses import json_response
from controller.core.kinds import Registry
from controller.ops.health import HealthProbe, Migrations
from controller.ops.metrics import HttpMetricsMiddleware, Metrics, ReplicaCollector
from controller.southbound.runtime import Southbound
from controller.store.agents import is_live
from controller.store.changes import ChangeLog
from controller.store.database import Database
from controller.store.operations import ServerStatus, server_statuses

TAG = "operations"


class Check(BaseModel):
    ok: bool
    message: str | None = None


class ReadinessDocument(BaseModel):
    status: str = Field(description="ready or notReady")
    checks: dict[str, Check] = Field(
        description="database (answers), migrations (current and head revisions), "
        "changeFollower (compiledRevision and committedRevision)"
    )


class Health(BaseModel):
    status: str = Field(description="always ok: the process answers")


class HostStatus(BaseModel):
    resourceRef: str
    instanceId: str
    connected: bool = Field(description="an agent is connected to a live replica")
    replica: str | None = Field(description="the replica it is (or was last) connected to")
    appliedRevision: int | None
    lag: int | None = Field(description="committed revisions it has not applied")
    failingObjects: int
    failures: list[dict[str, Any]] = Field(description="key, code and message of each")
    providerAddress: str | None
    lastSeen: str | None


class Hosts(BaseModel):
    revision: int = Field(description="the newest committed change-log revision")
    value: list[HostStatus]


def install(
    app: FastAPI,
    *,
    database: Database,
    southbound: Southbound,
    registry: Registry,
    words: Sequence[str],
    migrations: Migrations,
) -> Metrics:
    """Add the operator endpoints and the outermost request-metrics middleware to ``app``;
    returns the metrics (for the waits and compile times the caller wires in)."""
    metrics = Metrics()
    probe = HealthProbe(database, southbound, migrations)
    collector = ReplicaCollector(southbound, database)
    metrics.registry.register(collector)
    southbound.follower.on_compiled = metrics.compile.observe

    async def healthz() -> Response:
        return json_response({"status": "ok"})

    async def readyz() -> Response:
        readiness = await probe.readiness()
        return json_response(readiness.document(), 200 if readiness.ready else 503)

    async def scrape() -> Response:
        facts = await probe.facts()
        collector.database_up = facts is not None
        collector.committed_revision = None if facts is None else facts.committed_revision
        # The classic text format: every Prometheus (and other scraper) reads it, and no
        # name here needs the UTF-8 names of the newer one.
        text = generate_latest(metrics.registry)
        return Response(text, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    async def hosts() -> Response:
        return json_response(await _hosts(database, southbound))

    add = app.add_api_route
    add(
        "/healthz",
        healthz,
        methods=["GET"],
        tags=[TAG],
        operation_id="healthz",
        summary="Liveness: the process answers (never touches the database)",
        responses={200: {"model": Health}},
    )
    add(
        "/readyz",
        readyz,
        methods=["GET"],
        tags=[TAG],
        operation_id="readyz",
        summary="Readiness: database reachable, migrations current, change follower caught up",
        responses={
            200: {"model": ReadinessDocument},
            503: {"model": ReadinessDocument, "description": "a check failed"},
        },
    )
    add(
        "/metrics",
        scrape,
        methods=["GET"],
        tags=[TAG],
        operation_id="metrics",
        summary="Prometheus metrics of this replica (docs/operations.md lists them)",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    add(
        "/southbound/v1/hosts",
        hosts,
        methods=["GET"],
        tags=["southbound"],
        operation_id="southbound_hosts",
        summary="Every server with its agent: connected, replica, applied revision, lag, "
        "failing objects",
        responses={200: {"model": Hosts}},
    )
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics, registry=registry, words=words)
    return metrics


async def _hosts(database: Database, southbound: Southbound) -> dict[str, Any]:
    async def read(connection: AsyncConnection) -> tuple[int, list[ServerStatus]]:
        committed = await ChangeLog(connection, is_postgres=database.is_postgres).current()
        return committed, await server_statuses(connection)

    committed, statuses = await database.run(read, write=False)
    now = datetime.now(UTC)
    stale = timedelta(seconds=southbound.options.stale_after)
    return {"revision": committed, "value": [_host(s, committed, now, stale) for s in statuses]}


def _host(status: ServerStatus, committed: int, now: datetime, stale: timedelta) -> dict[str, Any]:
    live = is_live(status.connected, status.last_seen, now, stale)
    applied = status.applied_revision
    return {
        "resourceRef": status.resource_ref,
        "instanceId": str(status.instance_id),
        "connected": live,
        "replica": status.replica,
        "appliedRevision": applied,
        "lag": None if applied is None else max(committed - applied, 0),
        "failingObjects": len(status.failures),
        "failures": status.failures,
        "providerAddress": status.provider_address,
        "lastSeen": None if status.last_seen is None else status.last_seen.isoformat(),
    }
