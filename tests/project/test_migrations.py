"""Migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

from controller.store import migrate
from controller.store.database import sync_url
from controller.store.tables import Base


def _differences(url: str) -> list[object]:
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_migrated_database_matches_the_models(migrated_url: str) -> None:
    assert _differences(migrated_url) == []


def test_database_is_at_the_newest_revision(migrated_url: str) -> None:
    assert migrate.current_revision(migrated_url) == migrate.head_revision()


def test_upgrade_is_idempotent(migrated_url: str) -> None:
    migrate.upgrade(migrated_url)
    assert migrate.current_revision(migrated_url) == migrate.head_revision()


def test_migrations_roll_forward_only() -> None:
    for script in migrate.SCRIPT_LOCATION.joinpath("versions").glob("*.py"):
        if script.name == "__init__.py":
            continue
        text = script.read_text()
        assert 'raise NotImplementedError("migrations roll forward only")' in text, script.name
