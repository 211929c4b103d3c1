"""The file-drop connector: each message as ``<message id>.xml`` in a directory.

Two steps, so that the local system sees each file exactly once whatever
crashes when:

1. ``deliver`` stages the message as the hidden ``.<id>.xml.staged``: the
   bytes go to a temporary file in the same directory, are fsynced and
   ``os.replace``d onto the staged name, and the directory is fsynced. A
   crash leaves no file or a whole one, never a partial one.
2. Once the ledger has recorded the message as ``DELIVERED_LOCAL``,
   ``publish`` renames the staged file to ``<id>.xml``. After a crash in
   between, the staged file is still there and is published on the next turn;
   before the ledger recorded it, the message is staged again (same name,
   same bytes).

Local systems must ignore names starting with ``.``. The local system takes a
file by moving or deleting it (or by ``POST /v1/inbox/{id}/ack``); the
gateway then records ``ACKNOWLEDGED``. A missing directory is treated as the
local system being unavailable: it is never created here, because an
unmounted share must not be written under.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from gateway.connectors.base import Handover, LocalMessage, Outcome

SUFFIX = ".xml"
# Message ids are UUIDs; anything else could escape the directory or hide a file.
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def file_name(message_id: str) -> str | None:
    """The visible drop file's name, or None when the id cannot safely be a file name."""
    return f"{message_id}{SUFFIX}" if SAFE_ID.match(message_id) else None


def staged_name(message_id: str) -> str:
    return f".{message_id}{SUFFIX}.staged"


def fsync_directory(directory: Path) -> None:
    """Make renames in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``directory/name`` so that no reader ever sees part of it."""
    final = directory / name
    tmp = directory / f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(directory)
    return final


class FileDropConnector:
    kind = "file"
    pushes = True

    def __init__(self, authority: str, directory: Path) -> None:
        self.authority = authority
        self.directory = directory

    def deliver(self, message: LocalMessage) -> Handover:
        if file_name(message.message_id) is None:
            return Handover(
                Outcome.REFUSED, f"message id {message.message_id!r} is not usable as a file name"
            )
        if not self.directory.is_dir():
            return Handover(Outcome.RETRY, f"drop directory {self.directory} does not exist")
        try:
            write_atomically(self.directory, staged_name(message.message_id), message.body)
        except OSError as exc:
            # Disk full, permissions, a share gone away: all may be mended.
            return Handover(Outcome.RETRY, f"writing into {self.directory}: {exc.strerror or exc}")
        return Handover(Outcome.PLACED, f"dropped into {self.directory}")

    def publish(self, message_ids: list[str]) -> None:
        moved = False
        for message_id in message_ids:
            name = file_name(message_id)
            if name is None:
                continue
            try:
                os.replace(self.directory / staged_name(message_id), self.directory / name)
                moved = True
            except FileNotFoundError:
                pass  # already published (by this turn or an earlier one)
        if moved:
            fsync_directory(self.directory)

    def taken(self, message_ids: list[str]) -> set[str]:
        if not message_ids or not self.directory.is_dir():
            # A vanished directory says nothing about what the local system took.
            return set()
        present = {entry.name for entry in os.scandir(self.directory)}
        return {
            m for m in message_ids if file_name(m) not in present and staged_name(m) not in present
        }

    def withdraw(self, message_id: str) -> bool:
        name = file_name(message_id)
        if name is None or not self.directory.is_dir():
            return False
        removed = False
        for path in (self.directory / name, self.directory / staged_name(message_id)):
            try:
                path.unlink()  # the local system takes a file by moving it: gone means taken
                removed = True
            except FileNotFoundError:
                continue
        if removed:
            fsync_directory(self.directory)
        return removed

    def close(self) -> None:
        """Nothing to release."""
