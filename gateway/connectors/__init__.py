"""Local-system connectors: how received messages reach an authority's own case system.

``base`` is the contract; ``pull``, ``webhook`` and ``filedrop`` the three
kinds; ``registry`` picks one per authority from ``authorities.yaml``;
``state`` keeps each message's handover state in the ledger; ``handover``
and ``deadline`` are the periodic work that ``feature`` registers.
"""
