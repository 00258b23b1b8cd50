"""Test support: a throwaway PostgreSQL server, fixtures' helpers."""
