"""The audit chain anchored at the peers: receipts' heads kept, and the periodic check.

The heads themselves and the check live in ``gateway.ledger.audit_anchor``;
this feature keeps what received receipts carry and runs the check.
"""
