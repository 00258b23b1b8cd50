"""Prometheus metrics of one replica (``GET /metrics``, documented in docs/operations.md).

Label values are bounded whatever clients send: requests are labelled by the resource *kind*
their path names (``virtualNetworks/subnets``), never by the path itself, methods outside the
HTTP set count as ``other``, and per-agent figures are folded into one histogram (a thousand
hosts are a thousand observations, not a thousand series). Everything the southbound already
keeps (revisions, sessions, reported failures) is read when Prometheus scrapes, so the hot
paths only pay for the few counters that cannot be derived.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller import __version__
from controller.api.middleware import canonical_path
from controller.api.routes import WaitApplied
from controller.core.kinds import Registry
from controller.southbound.runtime import Southbound
from controller.store.database import Database

METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})
# Paths outside the NBI that get a label of their own; any other is "other".
OPERATOR_PATHS = {
    "/healthz": "healthz",
    "/readyz": "readyz",
    "/metrics": "metrics",
    "/southbound/v1/status": "southbound/status",
    "/southbound/v1/hosts": "southbound/hosts",
    "/openapi.json": "openapi",
    "/docs": "docs",
}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
COMPILE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)
WAIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Revisions an agent's applied revision is behind the replica's compiled one.
LAG_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)


def kind_label(registry: Registry, path: str, words: Sequence[str] = ()) -> str:
    """The label of a request path: the resource kind it names (``accessControlLists/aclRules``
    for an ACL rule or the collection of them), the fixed words of a diagnostics path, the
    name of an operator path, ``unknown`` for an NBI path naming no kind, ``other`` else."""
    canonical = canonical_path(registry, path, words)
    parts = canonical.split("/")
    if len(parts) < 3 or parts[1] != "networking":
        return OPERATOR_PATHS.get(canonical.rstrip("/") or "/", "other")
    if len(parts) == 3:
        return "discovery" if parts[2] == "discovery" else "unknown"
    segments = parts[3:]
    if segments[0] in words:
        return "/".join(segment for segment in segments if segment in words)
    kind = None
    for segment in segments[::2]:
        kind = registry.top(segment) if kind is None else registry.child(kind, segment)
        if kind is None:
            return "unknown"
    assert kind is not None
    return kind.key


class Metrics:
    """The metrics of one application (a registry of its own: tests build many apps in one
    process, and two replicas' figures must never mix)."""

    def __init__(self) -> None:
        # The client library adds a "_created" timestamp series to every counter and
        # histogram; Prometheus ignores them in this format and they double the output.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sdnc_http_requests",
            "HTTP requests answered, by method, resource kind and status code.",
            ["method", "kind", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "sdnc_http_request_duration_seconds",
            "Time from a request reaching the application to its last response byte.",
            ["method", "kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "sdnc_http_requests_in_flight", "HTTP requests being answered now.", registry=r
        )
        self.compile = Histogram(
            "sdnc_compile_seconds",
            "Time the policy compiler took for one change of the change log.",
            buckets=COMPILE_BUCKETS,
            registry=r,
        )
        self.waits = Counter(
            "sdnc_wait_applied",
            "?wait=applied requests by outcome: applied (every affected host acknowledged "
            "in time) or timeout.",
            ["outcome"],
            registry=r,
        )
        self.wait_seconds = Histogram(
            "sdnc_wait_applied_seconds",
            "Time a ?wait=applied request waited for the hosts.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        for outcome in ("applied", "timeout"):
            self.waits.labels(outcome)
        Gauge("sdnc_build_info", "The controller's version.", ["version"], registry=r).labels(
            __version__
        ).set(1)

    def observe_request(self, method: str, kind: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(method, kind, str(status)).inc()
        self.latency.labels(method, kind).observe(seconds)

    def timed_waiter(self, wait: WaitApplied) -> WaitApplied:
        """``wait`` counted and timed."""

        async def timed(revision: int, within: float) -> bool:
            started = time.perf_counter()
            applied = await wait(revision, within)
            self.wait_seconds.observe(time.perf_counter() - started)
            self.waits.labels("applied" if applied else "timeout").inc()
            return applied

        return timed


class HttpMetricsMiddleware:
    """Counts and times every HTTP request, outermost, so that what the other layers refuse
    (413, a malformed path, a 500) is counted too."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, registry: Registry, words: Sequence[str] = ()
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.registry = registry
        self.words = tuple(words)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets when the application fails before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            kind = kind_label(self.registry, scope["path"], self.words)
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(scope["method"], kind, status, elapsed)


class ReplicaCollector(Collector):
    """The southbound and database figures, read when Prometheus scrapes."""

    def __init__(self, southbound: Southbound, database: Database) -> None:
        self.southbound = southbound
        self.database = database
        # Set by the scrape handler from one database read just before collecting (a
        # collector cannot await); None when the database did not answer.
        self.committed_revision: int | None = None
        self.database_up = False

    def collect(self) -> Iterator[Metric]:
        yield from self._database()
        yield from self._revisions()
        yield from self._agents()

    def _database(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "sdnc_database_up",
            "1 when the database answered this scrape's read in time, else 0.",
            value=1 if self.database_up else 0,
        )
        in_use, size = self.database.pool_usage()
        yield GaugeMetricFamily(
            "sdnc_database_pool_connections_in_use",
            "Database connections checked out of this replica's pool now.",
            value=in_use,
        )
        yield GaugeMetricFamily(
            "sdnc_database_pool_size",
            "Database connections this replica's pool holds at most (SDNC_DATABASE_POOL_SIZE "
            "on PostgreSQL).",
            value=size,
        )

    def _revisions(self) -> Iterator[Metric]:
        compiled = self.southbound.compiler.revision
        yield GaugeMetricFamily(
            "sdnc_compiled_revision",
            "The change-log revision this replica's compiler has processed.",
            value=compiled,
        )
        if self.committed_revision is not None:
            committed = max(self.committed_revision, compiled)
            yield GaugeMetricFamily(
                "sdnc_changelog_revision",
                "The newest committed change-log revision (read at scrape).",
                value=committed,
            )
            yield GaugeMetricFamily(
                "sdnc_change_follower_lag_revisions",
                "Committed revisions this replica has not compiled yet.",
                value=committed - compiled,
            )

    def _agents(self) -> Iterator[Metric]:
        sessions = list(self.southbound.hub.sessions.values())
        compiled = self.southbound.compiler.revision
        yield GaugeMetricFamily(
            "sdnc_agents_connected",
            "Host agents connected to this replica.",
            value=len(sessions),
        )
        lags = [max(compiled - session.applied_revision, 0) for session in sessions]
        yield GaugeHistogramMetricFamily(
            "sdnc_agent_applied_lag_revisions",
            "How far the applied revision of each agent connected here is behind the compiled "
            "revision (a gauge histogram: one observation per connected agent, now).",
            buckets=_cumulative(lags, LAG_BUCKETS),
            gsum_value=sum(lags),
        )
        yield CounterMetricFamily(
            "sdnc_agent_acks",
            "Acknowledgements received from agents connected to this replica.",
            value=self.southbound.hub.acks,
        )
        failing = [_failures(state.failures) for state in self.southbound.status.states.values()]
        yield GaugeMetricFamily(
            "sdnc_agent_failing_objects",
            "Objects the agents connected here last reported failing to apply.",
            value=sum(failing),
        )
        yield GaugeMetricFamily(
            "sdnc_agents_failing",
            "Agents connected here that report at least one failing object.",
            value=sum(1 for count in failing if count),
        )


def _cumulative(values: list[int], bounds: Sequence[int]) -> list[tuple[str, float]]:
    buckets = [(str(bound), float(sum(1 for v in values if v <= bound))) for bound in bounds]
    return [*buckets, ("+Inf", float(len(values)))]


def _failures(report: dict[str, Any] | None) -> int:
    return len((report or {}).get("failures") or [])
