"""The ledger's schema as Alembic migrations (``versions/``), run by ``gateway.ledger.migrate``.

One schema for every gateway: the revisions create the tables of the ledger
and of every standard feature, whichever features a gateway runs.
"""
