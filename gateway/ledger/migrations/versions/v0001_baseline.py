"""The ledger's schema as ``create_all`` made it when migrations began (issue 18).

Every table and index of the ledger and of the standard features, each
created only if missing: a ledger created before migrations (with or
without the messages indexes of issue 14) is adopted by this revision with
its rows as they were, and a new one is created whole.

Revision ID: 0001
Revises: none
Create Date: 2026-12-03 08:00:58.851619
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_anchor_checks",
        sa.Column("authority", sa.String(length=16), nullable=False),
        sa.Column("peer", sa.String(length=16), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("anchors", sa.Integer(), nullable=False),
        sa.Column("mismatches", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("authority", "peer"),
        if_not_exists=True,
    )
    op.create_table(
        "audit_anchors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=16), nullable=False),
        sa.Column("peer", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("reported_in", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("authority", "peer", "seq", "hash", name="uq_audit_anchor"),
        if_not_exists=True,
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("counterparty", sa.String(length=3), nullable=True),
        sa.Column("legal_basis", sa.String(length=32), nullable=True),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        if_not_exists=True,
    )
    op.create_table(
        "audit_peer_heads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=16), nullable=False),
        sa.Column("peer", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_audit_peer_heads_id", "audit_peer_heads", ["peer", "id"], if_not_exists=True
    )
    op.create_index(
        "ix_audit_peer_heads_seq", "audit_peer_heads", ["peer", "seq"], if_not_exists=True
    )

    op.create_table(
        "audit_subjects",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("child_key", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_audit_subjects_child_key", "audit_subjects", ["child_key"], if_not_exists=True
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("authority", "key", name="uq_idempotency_key"),
        if_not_exists=True,
    )
    op.create_table(
        "job_leases",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job"),
        if_not_exists=True,
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("authority", sa.String(length=16), nullable=False),
        sa.Column("sender", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=16), nullable=False),
        sa.Column("message_type", sa.String(length=32), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("case_ref", sa.String(length=64), nullable=True),
        sa.Column("legal_basis", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("receipt_due", sa.Boolean(), nullable=False),
        sa.Column("receipt_message_id", sa.String(length=36), nullable=True),
        sa.Column("child_key", sa.String(length=64), nullable=True),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        sa.Column("route", sa.String(length=16), nullable=False),
        sa.Column("route_to", sa.String(length=16), nullable=True),
        sa.Column("content_digest", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "direction", "authority", "sender", "message_id", "digest", name="uq_message"
        ),
        if_not_exists=True,
    )
    op.create_index(
        "ix_messages_case", "messages", ["direction", "authority", "case_ref"], if_not_exists=True
    )
    op.create_index(
        "ix_messages_child", "messages", ["direction", "authority", "child_key"], if_not_exists=True
    )
    op.create_index(
        "ix_messages_content",
        "messages",
        ["direction", "authority", "sender", "content_digest"],
        if_not_exists=True,
    )
    op.create_index("ix_messages_correlation", "messages", ["correlation_id"], if_not_exists=True)
    op.create_index(
        "ix_messages_inbox", "messages", ["authority", "direction", "status"], if_not_exists=True
    )
    op.create_index(
        "ix_messages_outbox",
        "messages",
        ["direction", "status", "next_attempt_at"],
        if_not_exists=True,
    )
    op.create_index("ix_messages_receipt_due", "messages", ["receipt_due"], if_not_exists=True)

    op.create_table(
        "parked_replays",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=16), nullable=True),
        sa.Column("message_type", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_parked_replays_message_id", "parked_replays", ["message_id"], if_not_exists=True
    )

    op.create_table(
        "dismissals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index("ix_dismissals_message_pk", "dismissals", ["message_pk"], if_not_exists=True)

    op.create_table(
        "status_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index("ix_status_history_at", "status_history", ["at"], if_not_exists=True)
    op.create_index(
        "ix_status_history_message_pk", "status_history", ["message_pk"], if_not_exists=True
    )

    op.create_table(
        "case_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("counterparty", sa.String(length=3), nullable=True),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("notice_key", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_case_log_notice", "case_log", ["authority", "notice_key"], if_not_exists=True
    )
    op.create_index(
        "ix_case_log_thread", "case_log", ["authority", "correlation_id"], if_not_exists=True
    )

    op.create_table(
        "case_threads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=3), nullable=False),
        sa.Column("case_ref", sa.String(length=64), nullable=True),
        sa.Column("child_key", sa.String(length=64), nullable=True),
        sa.Column("initiating_la", sa.String(length=3), nullable=True),
        sa.Column("residence_la", sa.String(length=3), nullable=True),
        sa.Column("governing_la", sa.String(length=3), nullable=True),
        sa.Column("governing_since", sa.String(length=40), nullable=True),
        sa.Column("inform_family", sa.Boolean(), nullable=True),
        sa.Column("family_restricted_by", sa.String(length=3), nullable=True),
        sa.Column("plan_digest", sa.String(length=64), nullable=True),
        sa.Column("plan_consent_ref", sa.String(length=200), nullable=True),
        sa.Column("parties", sa.Text(), nullable=False),
        sa.Column("leads", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("authority", "correlation_id", name="uq_case_thread"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_case_threads_ref", "case_threads", ["authority", "case_ref"], if_not_exists=True
    )

    op.create_table(
        "service_agreements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("practitioner_key", sa.String(length=200), nullable=False),
        sa.Column("practitioner", sa.String(length=200), nullable=False),
        sa.Column("delivery_la", sa.String(length=3), nullable=False),
        sa.Column("line_manager", sa.String(length=200), nullable=False),
        sa.Column("coordinator", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("authority", "practitioner_key", "delivery_la", name="uq_agreement"),
        if_not_exists=True,
    )
    op.create_table(
        "consent_register",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("child_key", sa.String(length=64), nullable=False),
        sa.Column("case_ref", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("given", sa.Boolean(), nullable=False),
        sa.Column("given_by", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("role_text", sa.String(length=200), nullable=True),
        sa.Column("gillick", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sa.String(length=40), nullable=True),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("named_las", sa.Text(), nullable=False),
        sa.Column("withdrawn", sa.Text(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_consent_child", "consent_register", ["authority", "child_key"], if_not_exists=True
    )

    op.create_table(
        "existence_held",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("requester", sa.String(length=3), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("approver", sa.String(length=200), nullable=True),
        sa.Column("approver_role", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("hashes", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
        if_not_exists=True,
    )
    op.create_table(
        "existence_index",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("keyed_hash", sa.String(length=64), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_existence_hash", "existence_index", ["authority", "keyed_hash"], if_not_exists=True
    )

    op.create_table(
        "issues_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("entry_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reported_by_la", sa.String(length=3), nullable=False),
        sa.Column("concerns_la", sa.String(length=3), nullable=True),
        sa.Column("raised_on", sa.Date(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("received_from", sa.String(length=3), nullable=True),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("authority", "entry_id", name="uq_issue_entry"),
        if_not_exists=True,
    )
    op.create_table(
        "dispute_escalations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=16), nullable=False),
        sa.Column("escalation_id", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=3), nullable=False),
        sa.Column("dispute_id", sa.String(length=200), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("addressee_role", sa.String(length=32), nullable=False),
        sa.Column("addressee_name", sa.String(length=500), nullable=False),
        sa.Column("addressee_email", sa.String(length=500), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ack_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acked_by", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("authority", "escalation_id", name="uq_dispute_escalation"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_dispute_escalations_due",
        "dispute_escalations",
        ["status", "ack_due_at"],
        if_not_exists=True,
    )

    op.create_table(
        "disputes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=16), nullable=False),
        sa.Column("dispute_id", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=3), nullable=False),
        sa.Column("counterpart", sa.String(length=3), nullable=False),
        sa.Column("case_ref", sa.String(length=200), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("asked", sa.Text(), nullable=False),
        sa.Column("raised_by", sa.Text(), nullable=False),
        sa.Column("against", sa.Text(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("interim_arrangement", sa.Text(), nullable=True),
        sa.Column("legal_basis", sa.String(length=32), nullable=False),
        sa.Column("consent_ref", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("authority", "dispute_id", name="uq_dispute"),
        if_not_exists=True,
    )
    op.create_index("ix_disputes_clock", "disputes", ["resolved", "deadline"], if_not_exists=True)

    op.create_table(
        "dispute_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dispute_pk", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("by", sa.String(length=500), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["dispute_pk"],
            ["disputes.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dispute_pk", "event_key", name="uq_dispute_event"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_dispute_events_dispute_pk", "dispute_events", ["dispute_pk"], if_not_exists=True
    )

    op.create_table(
        "access_notice_cursors",
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("history_after", sa.Integer(), nullable=False),
        sa.Column("audit_after", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("authority"),
        if_not_exists=True,
    )
    op.create_table(
        "lifecycle_follows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("origin", sa.String(length=3), nullable=False),
        sa.Column("origin_id", sa.String(length=64), nullable=False),
        sa.Column("onward", sa.String(length=3), nullable=False),
        sa.Column("onward_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_lifecycle_follows_onward",
        "lifecycle_follows",
        ["authority", "onward_id"],
        if_not_exists=True,
    )

    op.create_table(
        "lifecycle_received",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("sender", sa.String(length=3), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("original_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("handed_over_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("authority", "sender", "message_id", name="uq_lifecycle_received"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_lifecycle_received_message", "lifecycle_received", ["message_id"], if_not_exists=True
    )

    op.create_table(
        "recalls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("original_id", sa.String(length=64), nullable=False),
        sa.Column("original_digest", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=True),
        sa.Column("handed_over_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome_reason", sa.Text(), nullable=True),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("receipt_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("authority", "message_id", name="uq_recall"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_recalls_original", "recalls", ["authority", "original_id"], if_not_exists=True
    )

    op.create_table(
        "handover_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_handover_failures_message", "handover_failures", ["message_pk"], if_not_exists=True
    )

    op.create_table(
        "retention_case_states",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("assessment_pk", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("readable", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("authority", "correlation_id", name="uq_case_state"),
        if_not_exists=True,
    )
    op.create_table(
        "retention_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id"),
        if_not_exists=True,
    )
    op.create_table(
        "retention_schedule",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job"),
        if_not_exists=True,
    )
    op.create_table(
        "tombstones",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=True),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=True),
        sa.Column("message_type", sa.String(length=32), nullable=False),
        sa.Column("sender", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=16), nullable=False),
        sa.Column("legal_basis", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rule", sa.String(length=120), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_pk"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_tombstones_message", "tombstones", ["authority", "message_id"], if_not_exists=True
    )
    op.create_index("ix_tombstones_run_id", "tombstones", ["run_id"], if_not_exists=True)


def downgrade() -> None:
    raise NotImplementedError("the first revision is not undone: it would drop the ledger")
