"""Operations: what the dashboard, ``/readyz`` and ``/metrics`` read.

Probes of the broker, readiness checks, certificate expiry and the
redaction of personal data from anything shown or logged.
"""
