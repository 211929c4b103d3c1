"""The standard features of a cafgw gateway, as values, in the order they run.

``gateway.context.build`` runs these unless it is handed others; a test that
needs only some builds its gateway with those.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from gateway.anchoring.feature import FEATURE as ANCHORING
from gateway.connectors.feature import FEATURE as LOCAL_DELIVERY
from gateway.crossborder.feature import FEATURE as CROSSBORDER
from gateway.disputes.feature import FEATURE as DISPUTES
from gateway.feature import Feature
from gateway.ledger import tables as ledger_tables
from gateway.lifecycle.feature import FEATURE as LIFECYCLE
from gateway.retention.feature import FEATURE as RETENTION


def standard() -> tuple[Feature, ...]:
    """Case threads and the cross-border registers, disputes, recall and correction,
    local delivery, retention, the audit chain anchored at the peers."""
    return (CROSSBORDER, DISPUTES, LIFECYCLE, LOCAL_DELIVERY, RETENTION, ANCHORING)


def schema() -> tuple[MetaData, ...]:
    """Every table of a gateway's ledger: the ledger's own and every standard feature's.

    The ledger's migrations create all of them whichever features a gateway
    runs (one schema for every gateway); a test compares them with the
    migrations' newest revision.
    """
    found = [ledger_tables.metadata]
    for feature in standard():
        found.extend(t for t in feature.tables if t not in found)
    return tuple(found)
