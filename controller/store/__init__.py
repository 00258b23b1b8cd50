"""Persistence: schema, connections, transactions, queries, migrations."""
