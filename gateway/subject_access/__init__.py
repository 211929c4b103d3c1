"""Subject access: what an authority holds and shared about one child, for the child
or family asking (UK GDPR Article 15).

``report`` gathers it from the ledger (only rows about that child);
``fields`` says which fields each message carried; ``html`` and ``pdf``
render it for people; the JSON form is the report itself.
"""
