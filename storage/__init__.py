"""The `record` stage: everything that talks to PostgreSQL.

db (which database, engines), embedded (the default local server), models (the schema),
migrate (Alembic upgrades), repository (what the rest of vaultscan calls), drift (how a
finished run moves the latest state), locks (one scanner at a time across replicas).
"""
