"""Retention and erasure: personal data past its period (or on request) is erased,
a tombstone keeps the evidence.

``config`` reads ``config/retention.yaml``; ``tables`` holds the tombstones,
runs and case-state cache; ``cases`` works out each case thread's state;
``plan`` decides what is due (read-only, for ``cafgw retention plan``);
``purge`` erases it and reports; ``erasure`` does the same for one child on
request; ``local_copies`` removes copies in file drops and on the broker;
``feature`` registers the periodic job.
"""
