"""Recalls and corrections sent, with the outcome each recipient's receipt proved."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# One row per recall or correction (or erasure request) this authority sent (one recipient each).
recalls = Table(
    "recalls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),  # the sender of the original
    Column("kind", String(16), nullable=False),  # RECALL or CORRECTION
    Column("message_id", String(64), nullable=False),  # of the recall or correction
    Column("original_id", String(64), nullable=False),
    Column("original_digest", String(64), nullable=False),
    Column("recipient", String(3), nullable=False),
    Column("reason", String(32), nullable=False),  # RecallReason, or CORRECTION
    Column("actor", String(128), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    # from the recipient's signed receipt for the recall or correction
    Column("outcome", String(16)),  # DELIVERED, REJECTED, UNDELIVERABLE
    Column("action", String(16)),  # ActionTaken
    Column("handed_over_at", DateTime(timezone=True)),
    Column("outcome_reason", Text),
    Column("outcome_at", DateTime(timezone=True)),
    Column("receipt_id", String(64)),
    UniqueConstraint("authority", "message_id", name="uq_recall"),
)
Index("ix_recalls_original", recalls.c.authority, recalls.c.original_id)

# One row per recall, correction or erasure request this authority RECEIVED and acted
# on: what was done, said back in the signed receipt item for that message.
received = Table(
    "lifecycle_received",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),  # the recipient (this gateway's LA)
    Column("sender", String(3), nullable=False),  # the original's sender, who asked
    Column("message_id", String(64), nullable=False),  # of the recall/correction/request
    Column("kind", String(16), nullable=False),  # RECALL, CORRECTION or ERASURE
    Column("original_id", String(64), nullable=False),  # or the request reference
    Column("action", String(16), nullable=False),  # ActionTaken
    Column("handed_over_at", DateTime(timezone=True)),  # the local system had it since
    Column("reason", Text),  # what the receipt item says, no personal data
    Column("at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("authority", "sender", "message_id", name="uq_lifecycle_received"),
)
# The receipt loop looks its messages up by id, for every receipt it signs.
Index("ix_lifecycle_received_message", received.c.message_id)

# A recall or an erasure request that came before the record it names: it stands, and
# the record is withdrawn (and, for an erasure request, erased) on arrival
# (``gateway.lifecycle.standing``). Ids and digests only, nothing personal;
# ``resolved_at`` once the record came.
standing = Table(
    "lifecycle_standing",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),  # the recipient (this gateway's LA)
    Column("sender", String(3), nullable=False),  # the original's sender, who recalled it
    # RECALL or ERASURE (``standing.Kind``; revision 0009)
    Column("kind", String(16), nullable=False, server_default="RECALL"),
    Column("original_id", String(64), nullable=False),
    Column("original_digest", String(64), nullable=False),
    Column("recall_id", String(64), nullable=False),  # the recall's or erasure request's id
    # Its signed created-at: it matches only a record created before it.
    Column("recall_created_at", DateTime(timezone=True), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    # One request may stand for several messages (revision 0009).
    UniqueConstraint(
        "authority", "sender", "recall_id", "original_id", name="uq_lifecycle_standing"
    ),
)
# Read for every received record that can be recalled: by the key it arrives under.
Index(
    "ix_lifecycle_standing_original",
    standing.c.authority,
    standing.c.sender,
    standing.c.original_id,
)
# Who has a recall standing here (come within limits.max_age_s): asked once a
# received batch.
Index("ix_lifecycle_standing_live", standing.c.authority, standing.c.at)

# Access notices: per hosted authority, how far its status history and audit log
# have been reported, and when the next batch may go (claimed with a conditional
# update, so two gateway processes on one ledger never send the same events).
access_cursors = Table(
    "access_notice_cursors",
    metadata,
    Column("authority", String(3), primary_key=True),
    Column("history_after", Integer, nullable=False),
    Column("audit_after", Integer, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
)

# A recall this authority sent on because it had forwarded a recalled record: which
# received recall it follows, so the onward recipient's proof reaches the origin too.
follows = Table(
    "lifecycle_follows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),  # the forwarder (this gateway's LA)
    Column("origin", String(3), nullable=False),  # who sent the recall it follows
    Column("origin_id", String(64), nullable=False),  # that recall's message id
    Column("onward", String(3), nullable=False),  # where the forward went
    Column("onward_id", String(64), nullable=False),  # the recall sent there
)
Index("ix_lifecycle_follows_onward", follows.c.authority, follows.c.onward_id)

# "Not ours" said about a message this authority received: the MISDIRECTED notice sent
# for it, once. Saying it again (a double click, a retried API call) answers with this
# notice instead of asking the sender to recall the message a second time.
not_ours = Table(
    "lifecycle_not_ours",
    metadata,
    Column("authority", String(3), primary_key=True),  # the recipient (this gateway's LA)
    Column("message_id", String(64), primary_key=True),  # the received message
    Column("sender", String(3), nullable=False),  # its sender, who was asked to recall it
    Column("notice_id", String(64), nullable=False),  # the MISDIRECTED notice sent
    Column("actor", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
