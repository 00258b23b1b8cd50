"""Every moment the store keeps is read back in UTC with its zone, on SQLite too (which keeps
none): a naive datetime renders as no RFC 3339 date-time and cannot be compared with the
clock's aware ones."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.dialects import postgresql, sqlite

from controller.store.tables import Base, UtcDateTime


def test_every_timestamp_column_reads_back_with_its_zone() -> None:
    plain = [
        f"{table.name}.{column.name}"
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, DateTime)
    ]
    assert plain == [], "use UtcDateTime"
    moments = [
        column
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, UtcDateTime)
    ]
    assert len(moments) > 10


def test_a_naive_moment_is_read_as_utc() -> None:
    column = UtcDateTime()
    naive = datetime(2026, 12, 8, 0, 2, 38)
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        read = column.process_result_value(naive, dialect)
        assert read == naive.replace(tzinfo=UTC)
        assert read is not None
        assert read.isoformat() == "2026-12-08T00:02:38+00:00"
    aware = datetime(2026, 12, 8, tzinfo=UTC)
    assert column.process_result_value(aware, sqlite.dialect()) is aware
    assert column.process_result_value(None, sqlite.dialect()) is None
