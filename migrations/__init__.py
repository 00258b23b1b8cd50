"""Alembic migrations of the controller's database (roll forward only)."""
