"""Copies of received messages outside the ledger: file drops and the broker's parking queue.

A file the gateway dropped for its local system and that is still there
(not yet taken) is deleted when its message is erased; once the local
system has taken it, it is the local system's record (and the recall or
erasure notice tells it so). A dead letter parked on the broker was never
recorded; it is deleted when its age passes ``dead_letter_days``, or when
its body is about a child whose data is erased.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.connectors import filedrop
from gateway.connectors.registry import resolve
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.feature import Kit
from gateway.policy.child import child_key
from gateway.settings import Settings
from gateway.transport.base import Delivery, parked_key

log = logging.getLogger(__name__)

PEEK_LIMIT = 5000


def drop_directory(settings: Settings, authority: str) -> Path | None:
    """The file-drop directory of ``authority``, if its connector is a file drop."""
    connector = settings.directory.get(authority).connector
    if connector.kind != "file" or not connector.directory:
        return None
    return resolve(settings, connector.directory)


def still_dropped(settings: Settings, authority: str, message_id: str) -> bool:
    """True when the drop file (or its staged twin) is still waiting in the directory."""
    folder = drop_directory(settings, authority)
    name = filedrop.file_name(message_id)
    if folder is None or name is None:
        return False
    return (folder / name).exists() or (folder / filedrop.staged_name(message_id)).exists()


def remove_dropped(settings: Settings, authority: str, message_ids: Iterable[str]) -> int:
    """Delete the drop files of these messages that the local system has not taken."""
    folder = drop_directory(settings, authority)
    if folder is None or not folder.is_dir():
        return 0
    removed = 0
    for message_id in message_ids:
        name = filedrop.file_name(message_id)
        if name is None:
            continue
        for path in (folder / name, folder / filedrop.staged_name(message_id)):
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.error("cannot erase %s: %s", path, exc.strerror or exc)
    if removed:
        filedrop.fsync_directory(folder)
    return removed


@dataclass(frozen=True)
class ParkedCopy:
    """A parked dead letter, as much as erasing it needs (nothing personal)."""

    message_id: str
    sender: str
    message_type: str
    digest: str
    parked_at: datetime | None


def _parked_at(delivery: Delivery) -> datetime | None:
    deaths = delivery.headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        when = deaths[0].get("time")
        if isinstance(when, datetime):
            return when
    return None


def _copy(authority: str, delivery: Delivery) -> ParkedCopy:
    key = delivery.routing_key.split(".")
    _, message_type, sender = key if len(key) == 3 else (authority, "?", "?")
    message_id, body_digest = parked_key(delivery.message_id, delivery.body)
    return ParkedCopy(
        message_id=message_id,
        sender=sender[:16],
        message_type=message_type[:32],
        digest=body_digest,  # with the id, what names this copy (``discard_parked``)
        parked_at=_parked_at(delivery),
    )


def parked(kit: Kit, authority: str) -> list[tuple[ParkedCopy, Delivery]]:
    """Every parked message of ``authority`` (up to PEEK_LIMIT), left in place."""
    return [(_copy(authority, d), d) for d in kit.transport.peek_parked(authority, PEEK_LIMIT)]


def parked_before(kit: Kit, authority: str, cutoff: datetime) -> list[ParkedCopy]:
    """Parked messages of ``authority`` parked before ``cutoff`` (by the broker's x-death)."""
    return [
        c for c, _ in parked(kit, authority) if c.parked_at is not None and c.parked_at <= cutoff
    ]


def parked_about(kit: Kit, authority: str, key: str) -> list[ParkedCopy]:
    """Parked messages whose body (read, not trusted: they failed processing) is about ``key``."""
    limits = kit.settings.limits
    found = []
    for copy, delivery in parked(kit, authority):
        try:
            root = xmlsafe.parse(
                delivery.body, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
            )
            child = getattr(element_to_envelope(root).body, "child", None)
        except Exception:  # why everything: a parked body failed processing once already
            log.debug("parked message %s of %s is unreadable", copy.message_id, authority)
            continue  # unreadable or encrypted: nothing tells whose it is
        if child is not None and child_key(child) == key:
            found.append(copy)
    return found
