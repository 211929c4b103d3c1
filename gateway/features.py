"""The standard features of a cafgw gateway, as values, in the order they run.

``gateway.context.build`` runs these unless it is handed others; a test that
needs only some builds its gateway with those.
"""

from __future__ import annotations

from gateway.anchoring.feature import FEATURE as ANCHORING
from gateway.connectors.feature import FEATURE as LOCAL_DELIVERY
from gateway.crossborder.feature import FEATURE as CROSSBORDER
from gateway.disputes.feature import FEATURE as DISPUTES
from gateway.feature import Feature
from gateway.lifecycle.feature import FEATURE as LIFECYCLE
from gateway.retention.feature import FEATURE as RETENTION


def standard() -> tuple[Feature, ...]:
    """Case threads and the cross-border registers, disputes, recall and correction,
    local delivery, retention, the audit chain anchored at the peers."""
    return (CROSSBORDER, DISPUTES, LIFECYCLE, LOCAL_DELIVERY, RETENTION, ANCHORING)
