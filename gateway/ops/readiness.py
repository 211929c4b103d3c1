"""Readiness: may this gateway take traffic? Each check says why not."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gateway.context import Gateway
from gateway.errors import CafgwError, OutageError
from gateway.ops.broker import BrokerProbe
from gateway.ops.certificates import hosted_certificates

# Below either limit the ledger (SQLite) or the keys may fail to write.
MIN_FREE_BYTES = 256 * 1024 * 1024
MIN_FREE_RATIO = 0.05


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass(frozen=True)
class DiskSpace:
    path: Path
    free_bytes: int
    total_bytes: int

    @property
    def free_ratio(self) -> float:
        return self.free_bytes / self.total_bytes if self.total_bytes else 0.0


def data_path(gw: Gateway) -> Path:
    """Where the gateway writes: the SQLite ledger's folder, else the keys folder."""
    url = gw.settings.database.url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url[len("sqlite:///") :]).parent
    return gw.settings.keys_dir


def disk_space(path: Path) -> DiskSpace:
    """Free space on the filesystem holding ``path`` (its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return DiskSpace(path, usage.free, usage.total)


def _broker(probe: BrokerProbe) -> Check:
    try:
        probe.ping()
    except CafgwError as exc:
        return Check("broker", False, str(exc))
    return Check("broker", True, "reachable")


def _ledger(gw: Gateway) -> Check:
    try:
        gw.ledger.ping()
    except OutageError as exc:
        # What the gateway does meanwhile, so an operator knows nothing is being lost.
        return Check(
            "ledger",
            False,
            f"{exc}; received messages are held unacknowledged at the broker and "
            "outgoing ones wait in the outbox until the database answers again",
        )
    except CafgwError as exc:
        return Check("ledger", False, str(exc))
    return Check("ledger", True, "reachable")


def _disk(gw: Gateway, min_free_bytes: int, min_free_ratio: float) -> Check:
    try:
        space = disk_space(data_path(gw))
    except OSError as exc:
        return Check("disk", False, f"cannot read free space of {data_path(gw)}: {exc}")
    free_mib = space.free_bytes // (1024 * 1024)
    detail = f"{free_mib} MiB free ({space.free_ratio:.0%}) at {space.path}"
    ok = space.free_bytes >= min_free_bytes and space.free_ratio >= min_free_ratio
    if not ok:
        detail += (
            f"; below the minimum of {min_free_bytes // (1024 * 1024)} MiB and {min_free_ratio:.0%}"
        )
    return Check("disk", ok, detail)


def _keys(gw: Gateway) -> Check:
    missing = [code for code in gw.hosted if code not in gw.signers]
    if missing:
        return Check("keys", False, f"no signing key loaded for {', '.join(missing)}")
    expired = [c.authority for c in hosted_certificates(gw) if c.days_left <= 0]
    if expired:
        return Check("keys", False, f"signing certificate expired for {', '.join(expired)}")
    return Check("keys", True, f"signing keys loaded for {', '.join(gw.hosted) or 'none'}")


def check(
    gw: Gateway,
    probe: BrokerProbe,
    *,
    min_free_bytes: int = MIN_FREE_BYTES,
    min_free_ratio: float = MIN_FREE_RATIO,
) -> Readiness:
    """Broker and ledger reachable, disk space, keys loaded."""
    disk = _disk(gw, min_free_bytes, min_free_ratio)
    return Readiness((_broker(probe), _ledger(gw), disk, _keys(gw)))
