"""Disputes between practitioners of two authorities, and their escalation ladder.

``ladder`` (stages), ``calendar`` (working days), ``tables`` and ``store``
(the ledger's dispute state), ``messages`` (the signed ``Dispute`` message and
escalation notices), ``service`` (raise, comment, escalate, resolve, the
clock), ``escalations`` (the receiving side: line managers' deliveries and
their acknowledgement), ``feature`` (registration with the core).
"""
