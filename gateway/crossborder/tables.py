"""The cross-border feature's tables (consent register, existence index, issues
log) on a schema of their own, which the feature hands to the ledger."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData()
