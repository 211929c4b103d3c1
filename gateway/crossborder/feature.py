"""The cross-border policy feature, as a value: its tables and its appliers."""

from __future__ import annotations

from gateway.cases.tables import metadata as case_tables
from gateway.crossborder import (
    existence_asked,  # noqa: F401  (its table, in policy_tables)
    receive,
)
from gateway.crossborder.tables import metadata as policy_tables
from gateway.feature import Feature
from gateway.model import MessageType

FEATURE = Feature(
    name="crossborder",
    tables=(case_tables, policy_tables),
    appliers={
        MessageType.ASSESSMENT: receive.on_assessment,
        MessageType.CONSENT_CHANGE: receive.on_consent_change,
        MessageType.NOTIFICATION: receive.on_notification,
        MessageType.EVALUATION: receive.on_evaluation,
        MessageType.ISSUE_LOG_ENTRY: receive.on_issue,
    },
)
