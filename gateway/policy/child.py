"""Stable child identity: the key a consent register and the ledger agree on.

UPN, else NHS number, else normalised name + date of birth. Never the
postcode, which changes when a child moves. The key is a SHA-256 digest,
so it can sit in the ledger without being an identifier itself.
"""

from __future__ import annotations

import hashlib
import unicodedata

from gateway.model import Child


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    kept = "".join(c for c in decomposed if c.isalnum())
    return kept


def child_key(child: Child) -> str:
    """The stable identity key of ``child``."""
    upn = child.identifier("UPN")
    nhs = child.identifier("NHS")
    if upn:
        basis = f"UPN:{upn.upper()}"
    elif nhs:
        basis = f"NHS:{nhs.replace(' ', '')}"
    else:
        dob = child.date_of_birth.isoformat() if child.date_of_birth else "?"
        basis = f"NAME:{_fold(child.given_name)}:{_fold(child.family_name)}:{dob}"
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()
