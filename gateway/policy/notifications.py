"""The notices the guidance asks for, as canonical Notification bodies.

Builders only: who receives each and on what basis is decided in
``rules``. None of these carries a Child except the TAC invitation and the
significant-harm referral, which must identify the child to act on it.
"""

from __future__ import annotations

from datetime import date

from gateway import catalogues
from gateway.model import Audience, Child, Detail, Notification, NotificationType
from gateway.settings import Authority

RULE_FAMILY = "safeguarding.do-not-inform-family"


def _contact(authority: Authority) -> tuple[Detail, ...]:
    c = authority.coordinator
    found = [Detail("contact", c.name), Detail("contact_la", authority.code)]
    if c.email:
        found.append(Detail("contact_email", c.email))
    return tuple(found)


def cross_border_identified(
    case_ref: str | None, initiating: Authority, counterparts: list[str]
) -> Notification:
    return Notification(
        type=NotificationType.CROSS_BORDER_CASE_IDENTIFIED,
        case_ref=case_ref,
        summary=(
            f"A Common Assessment started in {initiating.name} involves "
            f"{', '.join(counterparts)}: coordinators to broker contact between practitioners "
            "and check whether an assessment already exists."
        ),
        details=(
            Detail("initiating_la", initiating.code),
            *(Detail("counterpart_la", c) for c in counterparts),
            *_contact(initiating),
        ),
    )


def consent_needed(
    case_ref: str | None, counterparts: list[str], reasons: list[str]
) -> Notification:
    return Notification(
        type=NotificationType.CONSENT_NEEDED,
        case_ref=case_ref,
        summary=(
            "Consent is needed before anything about this child can be shared with "
            f"{', '.join(counterparts)}; nothing has left the authority."
        ),
        details=(
            *(Detail("counterpart_la", c) for c in counterparts),
            *(Detail("refused_by_rule", r) for r in reasons),
        ),
    )


def child_moved_waiting(from_authority: Authority, to_la: str) -> Notification:
    """To the new authority when consent does not cover the transfer: no personal data."""
    return Notification(
        type=NotificationType.CHILD_MOVED_AREA,
        case_ref=None,
        summary=(
            f"A child known to {from_authority.name} has moved into your area. The case "
            "transfer waits for the family's consent; no personal data can be shared yet."
        ),
        details=(
            Detail("from_la", from_authority.code),
            Detail("to_la", to_la),
            Detail("transfer", "waiting-for-consent"),
            *_contact(from_authority),
        ),
    )


def case_transfer(
    case_ref: str, from_la: str, to_la: str, moved_on: date | None, review_by: date
) -> Notification:
    return Notification(
        type=NotificationType.CASE_TRANSFER,
        case_ref=case_ref,
        summary=f"The case transfers from {from_la} to {to_la}; review by {review_by.isoformat()}.",
        details=(
            Detail("from_la", from_la),
            Detail("to_la", to_la),
            *((Detail("moved_on", moved_on.isoformat()),) if moved_on else ()),
            Detail("review_by", review_by.isoformat()),
        ),
    )


def child_moved(case_ref: str, from_la: str, to_la: str, review_by: date) -> Notification:
    return Notification(
        type=NotificationType.CHILD_MOVED_AREA,
        case_ref=case_ref,
        summary=(
            f"The child moved from {from_la} to {to_la}; the case transfers, "
            f"review by {review_by.isoformat()}."
        ),
        details=(
            Detail("from_la", from_la),
            Detail("to_la", to_la),
            Detail("review_by", review_by.isoformat()),
        ),
    )


def governing_changed(
    case_ref: str,
    from_la: str,
    to_la: str,
    lead_name: str,
    since: date | None,
    child_views: str | None,
) -> Notification:
    return Notification(
        type=NotificationType.GOVERNING_AUTHORITY_CHANGED,
        case_ref=case_ref,
        summary=(
            f"The TAC meeting allocated a lead professional in {to_la}: {to_la}'s CAF process "
            f"and procedures govern the case from now on (previously {from_la})."
        ),
        details=(
            Detail("from_la", from_la),
            Detail("to_la", to_la),
            Detail("lead_professional", lead_name),
            *((Detail("since", since.isoformat()),) if since else ()),
            Detail("child_views_recorded", "true" if child_views else "false"),
        ),
    )


def family_text(message: str) -> str:
    """Marks ``message`` for the family catalogue (``pybabel extract -k family_text``)."""
    return message


FAMILY_NOTICE_TEXT = family_text(
    "Your lead professional now works in %(authority)s, so the Common Assessment now "
    "follows %(authority)s's process. Your practitioner will explain what changes for you."
)


def family_notice(
    case_ref: str, to_authority: Authority, language: str | None, interpreter: bool
) -> Notification:
    """The notice the family reads, in its recorded language from the message catalogue.

    A language without a catalogue (``gateway/locale``) gets the English text
    with the interpreter flagged to read it to the family; a translated notice
    carries the English text too, for the practitioner.
    """
    english = FAMILY_NOTICE_TEXT % {"authority": to_authority.name}
    code = catalogues.catalogue_for(language)
    translation: tuple[Detail, ...]
    if code is None:
        summary = english
        interpreter = True
        said = (
            f"none: no catalogue for {language}; the interpreter reads this notice "
            "to the family"
        )
        translation = (Detail("translation", said),)
    else:
        text = catalogues.translations(code).gettext(FAMILY_NOTICE_TEXT)
        summary = text % {"authority": to_authority.name}
        translation = (Detail("notice_language", code),)
        if summary != english:
            translation += (Detail("summary_en", english),)
    return Notification(
        type=NotificationType.FAMILY_NOTICE,
        case_ref=case_ref,
        audience=Audience.FAMILY,
        language=language,
        summary=summary,
        details=(
            Detail("governing_la", to_authority.code),
            Detail("interpreter_needed", "true" if interpreter else "false"),
            *((Detail("language", language),) if language else ()),
            *translation,
        ),
    )


def funding_request(
    case_ref: str, residence_la: str, lead_la: str | None, actions: int
) -> Notification:
    return Notification(
        type=NotificationType.FUNDING_REQUEST,
        case_ref=case_ref,
        summary=(
            f"Funding request for the services in the plan, made to {residence_la} where the "
            "child lives (budget-holding lead professional arrangements apply there)."
        ),
        details=(
            Detail("residence_la", residence_la),
            *((Detail("lead_professional_la", lead_la),) if lead_la else ()),
            Detail("plan_actions", str(actions)),
        ),
    )


def assessment_completed(case_ref: str, completed_on: date, by_la: str) -> Notification:
    return Notification(
        type=NotificationType.ASSESSMENT_COMPLETED,
        case_ref=case_ref,
        summary=f"The Common Assessment was completed on {completed_on.isoformat()} in {by_la}.",
        details=(
            Detail("completed_on", completed_on.isoformat()),
            Detail("completed_by_la", by_la),
        ),
    )


def tac_invitation(
    case_ref: str, child: Child, held_on: date, venue: str | None, by_la: str
) -> Notification:
    return Notification(
        type=NotificationType.TAC_INVITATION,
        case_ref=case_ref,
        child=child,
        summary=(
            f"Practitioners in the child's home area are invited to the TAC meeting on "
            f"{held_on.isoformat()}" + (f" at {venue}" if venue else "") + "."
        ),
        details=(
            Detail("held_on", held_on.isoformat()),
            *((Detail("venue", venue),) if venue else ()),
            Detail("convened_by_la", by_la),
        ),
    )


def significant_harm(
    case_ref: str, child: Child, text: str | None, inform_family: bool
) -> Notification:
    return Notification(
        type=NotificationType.SIGNIFICANT_HARM_REFERRAL,
        case_ref=case_ref,
        child=child,
        summary="Significant-harm referral under local safeguarding procedures.",
        details=(
            *((Detail("referral", text),) if text else ()),
            Detail("inform_family", "true" if inform_family else "false"),
        ),
    )


def out_of_area(practitioner: str, owner_la: str, delivery_la: str, seq: int) -> Notification:
    return Notification(
        type=NotificationType.OUT_OF_AREA_SERVICE,
        case_ref=None,
        summary=(
            f"A plan action would be delivered in {delivery_la} by a practitioner of {owner_la} "
            "without a recorded prior agreement (practitioner, line manager, "
            "local CAF coordinator)."
        ),
        details=(
            Detail("practitioner", practitioner),
            Detail("owner_la", owner_la),
            Detail("delivery_la", delivery_la),
            Detail("action_seq", str(seq)),
        ),
    )
