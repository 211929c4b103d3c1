"""Owner-only files and directories: the ledger, keys, API keys, credentials.

Everything the gateway keeps on disk about children or about access (the
SQLite ledger with its ``-wal`` and ``-shm``, signing keys, the API key
store, demo credentials, the audit chain key) is created readable by its
owner alone: files 0600, directories 0700, whatever the process umask. A
file is created with its final mode (never chmod-ed after it was briefly
readable) and replaced atomically, so a crash leaves the old content.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_dir(folder: Path, *, tighten_existing: bool = False) -> None:
    """Create ``folder`` and any missing parents owner-only (0700).

    An existing directory is left as it is unless ``tighten_existing``: a
    file's parent may be a directory the operator shares on purpose.
    """
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(mode=DIR_MODE, exist_ok=True)
        tighten(path)  # mkdir's mode is masked by the umask
    if tighten_existing:
        tighten(folder)


def tighten(path: Path) -> None:
    """Remove group and other access from ``path`` if it exists and this user owns it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists; tighten it if it does.

    Used before a library (SQLite) creates a file itself with the umask's mode.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        tighten(path)
        return
    os.close(fd)


def write_private(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` as a fresh 0600 file, atomically (temp file, fsync, rename)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    make_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def is_private(path: Path) -> bool:
    """True when nobody but the owner may read, write or enter ``path``."""
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def tighten_tree(folder: Path) -> None:
    """Make every directory under ``folder`` 0700 and every file 0600 (ours only).

    For state left by an older version or another tool with a looser umask.
    Symbolic links are not followed.
    """
    if not folder.is_dir() or folder.is_symlink():
        return
    tighten(folder)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            path = Path(root) / name
            if not path.is_symlink():
                tighten(path)
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                tighten(path)
