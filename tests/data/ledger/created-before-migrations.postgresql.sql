-- The ledger's schema as create_all made it before migrations (issue 18), on postgresql:
-- the test of adopting such a ledger builds one from this, whatever the code's tables
-- have become since. Statements are separated by blank lines.

CREATE TABLE access_notice_cursors (
	authority VARCHAR(3) NOT NULL,
	history_after INTEGER NOT NULL,
	audit_after INTEGER NOT NULL,
	due_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (authority)
);

CREATE TABLE audit_anchor_checks (
	authority VARCHAR(16) NOT NULL,
	peer VARCHAR(16) NOT NULL,
	checked_at TIMESTAMP WITH TIME ZONE NOT NULL,
	anchors INTEGER NOT NULL,
	mismatches INTEGER NOT NULL,
	detail TEXT,
	PRIMARY KEY (authority, peer)
);

CREATE TABLE audit_anchors (
	id SERIAL NOT NULL,
	authority VARCHAR(16) NOT NULL,
	peer VARCHAR(16) NOT NULL,
	seq INTEGER NOT NULL,
	hash VARCHAR(64) NOT NULL,
	reported_in VARCHAR(64) NOT NULL,
	received_at TIMESTAMP WITH TIME ZONE NOT NULL,
	message_id VARCHAR(64) NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT uq_audit_anchor UNIQUE (authority, peer, seq, hash)
);

CREATE TABLE audit_log (
	seq INTEGER NOT NULL,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	actor VARCHAR(128) NOT NULL,
	action VARCHAR(32) NOT NULL,
	authority VARCHAR(3) NOT NULL,
	counterparty VARCHAR(3),
	legal_basis VARCHAR(32),
	message_id VARCHAR(36),
	digest VARCHAR(64),
	detail TEXT,
	prev_hash VARCHAR(64) NOT NULL,
	hash VARCHAR(64) NOT NULL,
	PRIMARY KEY (seq)
);

CREATE TABLE audit_peer_heads (
	id SERIAL NOT NULL,
	authority VARCHAR(16) NOT NULL,
	peer VARCHAR(16) NOT NULL,
	seq INTEGER NOT NULL,
	hash VARCHAR(64) NOT NULL,
	received_at TIMESTAMP WITH TIME ZONE NOT NULL,
	message_id VARCHAR(64) NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_audit_peer_heads_id ON audit_peer_heads (peer, id);

CREATE INDEX ix_audit_peer_heads_seq ON audit_peer_heads (peer, seq);

CREATE TABLE audit_subjects (
	seq INTEGER NOT NULL,
	child_key VARCHAR(64) NOT NULL,
	PRIMARY KEY (seq)
);

CREATE INDEX ix_audit_subjects_child_key ON audit_subjects (child_key);

CREATE TABLE case_log (
	id SERIAL NOT NULL,
	authority VARCHAR(3) NOT NULL,
	correlation_id VARCHAR(64) NOT NULL,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	kind VARCHAR(40) NOT NULL,
	counterparty VARCHAR(3),
	message_id VARCHAR(64),
	notice_key VARCHAR(200),
	detail TEXT,
	PRIMARY KEY (id)
);

CREATE INDEX ix_case_log_notice ON case_log (authority, notice_key);

CREATE INDEX ix_case_log_thread ON case_log (authority, correlation_id);

CREATE TABLE case_threads (
	id SERIAL NOT NULL,
	authority VARCHAR(3) NOT NULL,
	correlation_id VARCHAR(64) NOT NULL,
	owner VARCHAR(3) NOT NULL,
	case_ref VARCHAR(64),
	child_key VARCHAR(64),
	initiating_la VARCHAR(3),
	residence_la VARCHAR(3),
	governing_la VARCHAR(3),
	governing_since VARCHAR(40),
	inform_family BOOLEAN,
	family_restricted_by VARCHAR(3),
	plan_digest VARCHAR(64),
	plan_consent_ref VARCHAR(200),
	parties TEXT NOT NULL,
	leads TEXT NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT uq_case_thread UNIQUE (authority, correlation_id)
);

CREATE INDEX ix_case_threads_ref ON case_threads (authority, case_ref);

CREATE TABLE consent_register (
	id SERIAL NOT NULL,
	authority VARCHAR(3) NOT NULL,
	child_key VARCHAR(64) NOT NULL,
	case_ref VARCHAR(64),
	source VARCHAR(16) NOT NULL,
	message_id VARCHAR(64),
	action VARCHAR(16) NOT NULL,
	given BOOLEAN NOT NULL,
	given_by VARCHAR(200),
	role VARCHAR(16),
	role_text VARCHAR(200),
	gillick BOOLEAN NOT NULL,
	recorded_at VARCHAR(40),
	scopes TEXT NOT NULL,
	named_las TEXT NOT NULL,
	withdrawn TEXT NOT NULL,
	entered_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_consent_child ON consent_register (authority, child_key);

CREATE TABLE dispute_escalations (
	id SERIAL NOT NULL,
	authority VARCHAR(16) NOT NULL,
	escalation_id VARCHAR(64) NOT NULL,
	sender VARCHAR(3) NOT NULL,
	dispute_id VARCHAR(200) NOT NULL,
	stage VARCHAR(16) NOT NULL,
	kind VARCHAR(16) NOT NULL,
	addressee_role VARCHAR(32) NOT NULL,
	addressee_name VARCHAR(500) NOT NULL,
	addressee_email VARCHAR(500),
	body BYTEA NOT NULL,
	status VARCHAR(16) NOT NULL,
	attempts INTEGER NOT NULL,
	received_at TIMESTAMP WITH TIME ZONE NOT NULL,
	ack_due_at TIMESTAMP WITH TIME ZONE NOT NULL,
	acked_at TIMESTAMP WITH TIME ZONE,
	acked_by VARCHAR(500),
	PRIMARY KEY (id),
	CONSTRAINT uq_dispute_escalation UNIQUE (authority, escalation_id)
);

CREATE INDEX ix_dispute_escalations_due ON dispute_escalations (status, ack_due_at);

CREATE TABLE disputes (
	id SERIAL NOT NULL,
	authority VARCHAR(16) NOT NULL,
	dispute_id VARCHAR(200) NOT NULL,
	owner VARCHAR(3) NOT NULL,
	counterpart VARCHAR(3) NOT NULL,
	case_ref VARCHAR(200) NOT NULL,
	correlation_id VARCHAR(64) NOT NULL,
	subject TEXT NOT NULL,
	asked TEXT NOT NULL,
	raised_by TEXT NOT NULL,
	against TEXT NOT NULL,
	stage VARCHAR(16) NOT NULL,
	deadline TIMESTAMP WITH TIME ZONE,
	resolved BOOLEAN NOT NULL,
	outcome TEXT,
	interim_arrangement TEXT,
	legal_basis VARCHAR(32) NOT NULL,
	consent_ref VARCHAR(200),
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	resolved_at TIMESTAMP WITH TIME ZONE,
	PRIMARY KEY (id),
	CONSTRAINT uq_dispute UNIQUE (authority, dispute_id)
);

CREATE INDEX ix_disputes_clock ON disputes (resolved, deadline);

CREATE TABLE existence_held (
	id SERIAL NOT NULL,
	authority VARCHAR(3) NOT NULL,
	message_id VARCHAR(64) NOT NULL,
	requester VARCHAR(3) NOT NULL,
	correlation_id VARCHAR(64) NOT NULL,
	digest VARCHAR(64),
	approver VARCHAR(200),
	approver_role VARCHAR(200),
	reason TEXT,
	hashes TEXT NOT NULL,
	received_at TIMESTAMP WITH TIME ZONE NOT NULL,
	decision VARCHAR(16),
	decided_by VARCHAR(200),
	decided_at TIMESTAMP WITH TIME ZONE,
	PRIMARY KEY (id),
	UNIQUE (message_id)
);

CREATE TABLE existence_index (
	id SERIAL NOT NULL,
	authority VARCHAR(3) NOT NULL,
	keyed_hash VARCHAR(64) NOT NULL,
	correlation_id VARCHAR(64) NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_existence_hash ON existence_index (authority, keyed_hash);

CREATE TABLE handover_failures (
	id SERIAL NOT NULL,
	authority VARCHAR(3) NOT NULL,
	message_pk INTEGER NOT NULL,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	reason TEXT,
	PRIMARY KEY (id)
);

CREATE INDEX ix_handover_failures_message ON handover_failures (message_pk);

CREATE TABLE idempotency_keys (
	id SERIAL NOT NULL,
	authority VARCHAR(3) NOT NULL,
	key VARCHAR(200) NOT NULL,
	request_digest VARCHAR(64) NOT NULL,
	status_code INTEGER NOT NULL,
	response TEXT,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT uq_idempotency_key UNIQUE (authority, key)
);

CREATE TABLE issues_log (
	id SERIAL NOT NULL,
	authority VARCHAR(3) NOT NULL,
	entry_id VARCHAR(200) NOT NULL,
	kind VARCHAR(32) NOT NULL,
	reported_by_la VARCHAR(3) NOT NULL,
	concerns_la VARCHAR(3),
	raised_on DATE NOT NULL,
	description TEXT NOT NULL,
	received_from VARCHAR(3),
	message_id VARCHAR(64),
	logged_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT uq_issue_entry UNIQUE (authority, entry_id)
);

CREATE TABLE job_leases (
	job VARCHAR(64) NOT NULL,
	holder VARCHAR(128) NOT NULL,
	until TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (job)
);

CREATE TABLE lifecycle_follows (
	id SERIAL NOT NULL,
	authority VARCHAR(3) NOT NULL,
	origin VARCHAR(3) NOT NULL,
	origin_id VARCHAR(64) NOT NULL,
	onward VARCHAR(3) NOT NULL,
	onward_id VARCHAR(64) NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_lifecycle_follows_onward ON lifecycle_follows (authority, onward_id);

CREATE TABLE lifecycle_received (
	id SERIAL NOT NULL,
	authority VARCHAR(3) NOT NULL,
	sender VARCHAR(3) NOT NULL,
	message_id VARCHAR(64) NOT NULL,
	kind VARCHAR(16) NOT NULL,
	original_id VARCHAR(64) NOT NULL,
	action VARCHAR(16) NOT NULL,
	handed_over_at TIMESTAMP WITH TIME ZONE,
	reason TEXT,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT uq_lifecycle_received UNIQUE (authority, sender, message_id)
);

CREATE INDEX ix_lifecycle_received_message ON lifecycle_received (message_id);

CREATE TABLE messages (
	id SERIAL NOT NULL,
	message_id VARCHAR(64) NOT NULL,
	direction VARCHAR(8) NOT NULL,
	authority VARCHAR(16) NOT NULL,
	sender VARCHAR(16) NOT NULL,
	recipient VARCHAR(16) NOT NULL,
	message_type VARCHAR(32) NOT NULL,
	correlation_id VARCHAR(64) NOT NULL,
	case_ref VARCHAR(64),
	legal_basis VARCHAR(32) NOT NULL,
	purpose VARCHAR(32),
	status VARCHAR(16) NOT NULL,
	reason TEXT,
	digest VARCHAR(64),
	body BYTEA,
	attempts INTEGER NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	next_attempt_at TIMESTAMP WITH TIME ZONE,
	receipt_due BOOLEAN NOT NULL,
	receipt_message_id VARCHAR(36),
	child_key VARCHAR(64),
	restricted BOOLEAN NOT NULL,
	route VARCHAR(16) NOT NULL,
	route_to VARCHAR(16),
	content_digest VARCHAR(64),
	claimed_until TIMESTAMP WITH TIME ZONE,
	PRIMARY KEY (id),
	CONSTRAINT uq_message UNIQUE (direction, authority, sender, message_id, digest)
);

CREATE INDEX ix_messages_case ON messages (direction, authority, case_ref);

CREATE INDEX ix_messages_child ON messages (direction, authority, child_key);

CREATE INDEX ix_messages_content ON messages (direction, authority, sender, content_digest);

CREATE INDEX ix_messages_correlation ON messages (correlation_id);

CREATE INDEX ix_messages_inbox ON messages (authority, direction, status);

CREATE INDEX ix_messages_outbox ON messages (direction, status, next_attempt_at);

CREATE INDEX ix_messages_receipt_due ON messages (receipt_due);

CREATE TABLE parked_replays (
	id SERIAL NOT NULL,
	authority VARCHAR(3) NOT NULL,
	message_id VARCHAR(64) NOT NULL,
	sender VARCHAR(16),
	message_type VARCHAR(32),
	reason TEXT,
	attempts INTEGER NOT NULL,
	status VARCHAR(16) NOT NULL,
	actor VARCHAR(128) NOT NULL,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_parked_replays_message_id ON parked_replays (message_id);

CREATE TABLE recalls (
	id SERIAL NOT NULL,
	authority VARCHAR(3) NOT NULL,
	kind VARCHAR(16) NOT NULL,
	message_id VARCHAR(64) NOT NULL,
	original_id VARCHAR(64) NOT NULL,
	original_digest VARCHAR(64) NOT NULL,
	recipient VARCHAR(3) NOT NULL,
	reason VARCHAR(32) NOT NULL,
	actor VARCHAR(128) NOT NULL,
	requested_at TIMESTAMP WITH TIME ZONE NOT NULL,
	outcome VARCHAR(16),
	action VARCHAR(16),
	handed_over_at TIMESTAMP WITH TIME ZONE,
	outcome_reason TEXT,
	outcome_at TIMESTAMP WITH TIME ZONE,
	receipt_id VARCHAR(64),
	PRIMARY KEY (id),
	CONSTRAINT uq_recall UNIQUE (authority, message_id)
);

CREATE INDEX ix_recalls_original ON recalls (authority, original_id);

CREATE TABLE retention_case_states (
	id SERIAL NOT NULL,
	authority VARCHAR(3) NOT NULL,
	correlation_id VARCHAR(64) NOT NULL,
	assessment_pk INTEGER NOT NULL,
	state VARCHAR(16) NOT NULL,
	closed_at TIMESTAMP WITH TIME ZONE,
	readable BOOLEAN NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT uq_case_state UNIQUE (authority, correlation_id)
);

CREATE TABLE retention_runs (
	id SERIAL NOT NULL,
	run_id VARCHAR(36) NOT NULL,
	authority VARCHAR(3) NOT NULL,
	kind VARCHAR(16) NOT NULL,
	actor VARCHAR(128) NOT NULL,
	basis TEXT NOT NULL,
	started_at TIMESTAMP WITH TIME ZONE NOT NULL,
	finished_at TIMESTAMP WITH TIME ZONE NOT NULL,
	summary TEXT NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (run_id)
);

CREATE TABLE retention_schedule (
	id SERIAL NOT NULL,
	job VARCHAR(32) NOT NULL,
	next_run_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (job)
);

CREATE TABLE service_agreements (
	id SERIAL NOT NULL,
	authority VARCHAR(3) NOT NULL,
	practitioner_key VARCHAR(200) NOT NULL,
	practitioner VARCHAR(200) NOT NULL,
	delivery_la VARCHAR(3) NOT NULL,
	line_manager VARCHAR(200) NOT NULL,
	coordinator VARCHAR(200) NOT NULL,
	recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT uq_agreement UNIQUE (authority, practitioner_key, delivery_la)
);

CREATE TABLE tombstones (
	id SERIAL NOT NULL,
	message_pk INTEGER,
	authority VARCHAR(3) NOT NULL,
	direction VARCHAR(8) NOT NULL,
	message_id VARCHAR(64) NOT NULL,
	correlation_id VARCHAR(64),
	message_type VARCHAR(32) NOT NULL,
	sender VARCHAR(16) NOT NULL,
	recipient VARCHAR(16) NOT NULL,
	legal_basis VARCHAR(32) NOT NULL,
	status VARCHAR(16) NOT NULL,
	digest VARCHAR(64),
	created_at TIMESTAMP WITH TIME ZONE,
	erased_at TIMESTAMP WITH TIME ZONE NOT NULL,
	rule VARCHAR(120) NOT NULL,
	run_id VARCHAR(36) NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (message_pk)
);

CREATE INDEX ix_tombstones_message ON tombstones (authority, message_id);

CREATE INDEX ix_tombstones_run_id ON tombstones (run_id);

CREATE TABLE dismissals (
	id SERIAL NOT NULL,
	message_pk INTEGER NOT NULL,
	authority VARCHAR(3) NOT NULL,
	status VARCHAR(16) NOT NULL,
	actor VARCHAR(128) NOT NULL,
	reason TEXT NOT NULL,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(message_pk) REFERENCES messages (id)
);

CREATE INDEX ix_dismissals_message_pk ON dismissals (message_pk);

CREATE TABLE dispute_events (
	id SERIAL NOT NULL,
	dispute_pk INTEGER NOT NULL,
	event_key VARCHAR(64) NOT NULL,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	action VARCHAR(16) NOT NULL,
	by VARCHAR(500) NOT NULL,
	stage VARCHAR(16) NOT NULL,
	text TEXT,
	source VARCHAR(16) NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT uq_dispute_event UNIQUE (dispute_pk, event_key),
	FOREIGN KEY(dispute_pk) REFERENCES disputes (id)
);

CREATE INDEX ix_dispute_events_dispute_pk ON dispute_events (dispute_pk);

CREATE TABLE status_history (
	id SERIAL NOT NULL,
	message_pk INTEGER NOT NULL,
	status VARCHAR(16) NOT NULL,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	reason TEXT,
	PRIMARY KEY (id),
	FOREIGN KEY(message_pk) REFERENCES messages (id)
);

CREATE INDEX ix_status_history_at ON status_history (at);

CREATE INDEX ix_status_history_message_pk ON status_history (message_pk);
