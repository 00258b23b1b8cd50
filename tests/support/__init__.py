"""Test support: a throwaway PostgreSQL server, fixtures' helpers, NBI helpers and request
bodies."""
