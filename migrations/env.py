"""Alembic environment: migrates the database whose URL the caller passes in
``config.attributes["url"]`` (see ``controller.store.migrate``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from controller.store.tables import Base

# Any fixed number: replicas that start together take turns migrating.
MIGRATION_LOCK = 7_303_021


def run_migrations() -> None:
    url = context.config.attributes["url"]
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        is_postgres = connection.dialect.name == "postgresql"
        if is_postgres:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=not is_postgres,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if is_postgres:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                connection.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported")
run_migrations()
