"""Who may change what: each authority is sovereign over its own records.

A valid signature proves who said something, never that they may change it.
A received message is its sender's statement. It changes the receiver's case
threads only where these rules let that sender (``docs/sovereignty.md``
lists them with the guidance they come from):

- A case belongs to its owner (the authority whose case system holds the
  reference). A message may name its sender's own cases, or a case whose
  owner made the sender a party; anything else is refused (``case.not-a-party``),
  however it names the case.
- The parties of a case are the owner's to say: no received message adds one.
- The governing authority and the lead professionals: the owner, or the
  current governing authority ("the process and procedures of the Local
  Authority area in which the Lead Professional is based will be followed").
- A restriction that the family must not be told (significant harm): the
  owner or any party may set it (the safe direction: "unless doing so is
  likely to expose the child to further risk"); only whoever set it, or the
  owner, may lift it.
- The child's plan (actions, lead professionals): the owner or the governing
  authority, with a consent for the change ("the agencies cannot change it
  without their consent"); anyone else's version is their statement.
- Where the child lives, who initiated, which child: the owner's to say.
- Consent: another authority's consent message is recorded as its statement;
  it never changes the receiver's own consent register (``policy.consent``).
  A withdrawal restricts only what its sender disclosed.
- Issue-log entries: reported by their sender, no one else.
"""

from __future__ import annotations

from gateway.cases.store import CaseThread
from gateway.errors import PolicyRefusal

RULE_NOT_A_PARTY = "case.not-a-party"
RULE_GOVERNING = "thread.governing-authority"
RULE_FAMILY_LIFT = "thread.family-restriction"
RULE_ISSUE_REPORTER = "issues-log.reporter"
RULE_UNSOLICITED_ANSWER = "existence.unsolicited-answer"


def governs(thread: CaseThread | None, owner: str, sender: str) -> bool:
    """Whether ``sender`` may change who governs the case and its lead professionals."""
    if sender == owner:
        return True
    return thread is not None and thread.governing_la == sender


def check_governance_change(
    thread: CaseThread | None, owner: str, sender: str, what: str, where: str
) -> None:
    """Refuse a change of governance or lead professionals by someone who may not."""
    if governs(thread, owner, sender):
        return
    current = thread.governing_la if thread is not None else owner
    raise PolicyRefusal(
        RULE_GOVERNING,
        f"{where}: {sender} may not change {what} on {owner}'s case: only the owner ({owner}) "
        f"or the governing authority ({current}) may",
    )


def check_family_lift(thread: CaseThread | None, owner: str, sender: str, where: str) -> None:
    """Refuse lifting a "do not tell the family" restriction by anyone but its setter or owner."""
    if thread is None or thread.inform_family is not False:
        return
    setter = thread.family_restricted_by or owner
    if sender in (setter, owner):
        return
    raise PolicyRefusal(
        RULE_FAMILY_LIFT,
        f"{where}: the family must not be told about {owner}'s case (decided by {setter}); "
        f"only {setter} or the owner may lift that, not {sender}",
    )


def check_reporter(reported_by: str, sender: str, entry_id: str) -> None:
    """An issue-log entry is reported by the authority that sends it."""
    if reported_by != sender:
        raise PolicyRefusal(
            RULE_ISSUE_REPORTER,
            f"entry {entry_id} says it was reported by {reported_by}, but {sender} sent it",
        )
