"""Finding a child: the stable child key from whatever an authority's user gives."""

from __future__ import annotations

import re

from gateway.cases import store as cases
from gateway.errors import NotFoundError
from gateway.feature import Kit
from gateway.model import Child, Identifier
from gateway.policy.child import child_key

_KEY = re.compile(r"^[0-9a-f]{64}$")
_UPN = re.compile(r"^[A-Z][0-9]{11}[0-9A-Z]$")
_NHS = re.compile(r"^[0-9]{10}$")


def resolve_child(kit: Kit, authority: str, ref: str) -> str:
    """A child key from a child key, UPN, NHS number or one of the authority's case refs."""
    compact = ref.replace(" ", "")
    if _KEY.match(ref):
        return ref
    if _UPN.match(compact.upper()):
        return child_key(Child("", "", identifiers=(Identifier("UPN", compact.upper()),)))
    if _NHS.match(compact):
        return child_key(Child("", "", identifiers=(Identifier("NHS", compact),)))
    with kit.ledger.transaction() as conn:
        thread = cases.find_by_case_ref(conn, authority, ref[:64])
    if thread is None or thread.child_key is None:
        raise NotFoundError(f"child {ref} not found")
    return thread.child_key
