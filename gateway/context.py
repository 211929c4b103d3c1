"""The assembled gateway: settings and the components built from them, once.

Services take a ``Gateway`` and use its parts; nothing reads settings or
opens connections at import time, so tests build a Gateway of their own
(in-memory transport, a temporary ledger, a fixed clock).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from adapters import registry
from adapters.base import Adapter
from gateway.envelope.keys import ensure_identity
from gateway.envelope.schema import SchemaValidator
from gateway.envelope.signing import Signer, Verifier
from gateway.envelope.trust import TrustStore
from gateway.errors import ConfigError, UnknownAdapterError
from gateway.ledger import audit_key
from gateway.ledger.store import Ledger, utc_now
from gateway.settings import Settings
from gateway.transport.base import Transport


@dataclass
class AdapterSet:
    """The adapters in force; replaced whole on reload so readers never see half.

    ``by_name`` is only ever rebound to a new, complete mapping (one
    assignment), so a request that took it keeps a consistent set even while
    an administrator reloads.
    """

    by_name: Mapping[str, Adapter] = field(default_factory=dict)

    def get(self, name: str) -> Adapter:
        try:
            return self.by_name[name]
        except KeyError:
            known = ", ".join(sorted(self.by_name)) or "none"
            raise UnknownAdapterError(
                f"no adapter named {name!r}; known adapters: {known}"
            ) from None

    def replace(self, fresh: AdapterSet) -> None:
        """Put every adapter of ``fresh`` in force at once (the old set is dropped whole)."""
        self.by_name = MappingProxyType(dict(fresh.by_name))


@dataclass(frozen=True)
class Gateway:
    """Everything a service needs, built once at start."""

    settings: Settings
    ledger: Ledger
    transport: Transport
    signers: Mapping[str, Signer]
    verifier: Verifier
    schema: SchemaValidator
    adapters: AdapterSet
    clock: Callable[[], datetime] = utc_now

    @property
    def hosted(self) -> tuple[str, ...]:
        return self.settings.hosted

    def signer(self, code: str) -> Signer:
        try:
            return self.signers[code]
        except KeyError:
            raise ConfigError(
                f"authority {code} is not hosted by this gateway (no signing key)"
            ) from None


def load_adapters(settings: Settings) -> AdapterSet:
    """Every adapter with a mapping in ``adapters_dir``: the built-ins and ``kind:`` mappings.

    Any invalid mapping raises ``MappingError`` naming the file and key, so a
    reload either builds the whole set or changes nothing.
    """
    found = {}
    if settings.adapters_dir.is_dir():
        for name in registry.discover(settings.adapters_dir):
            found[name] = registry.create(
                name, settings.adapters_dir, settings.directory.authorities
            )
    return AdapterSet(MappingProxyType(found))


def build(
    settings: Settings,
    transport: Transport,
    *,
    ledger: Ledger | None = None,
    clock: Callable[[], datetime] = utc_now,
    create_keys: bool = False,
) -> Gateway:
    """Assemble a gateway; with ``create_keys`` missing keys of hosted authorities are made."""
    signers = {}
    for code in settings.hosted:
        authority = settings.directory.get(code)
        if create_keys:
            ensure_identity(code, authority.name, settings.keys_dir)
        key_path = settings.keys_dir / code / "key.pem"
        cert_path = settings.keys_dir / code / "cert.pem"
        if not key_path.exists():
            raise ConfigError(
                f"no signing key for hosted authority {code} at {key_path}; "
                f"create one with: cafgw keys init --authority {code}"
            )
        signers[code] = Signer.from_files(key_path, cert_path)
    trust = TrustStore.from_directory(
        settings.directory, settings.keys_dir, regional_ca=settings.trust.regional_ca
    )
    verifier = Verifier(
        trust,
        max_bytes=settings.limits.max_message_bytes,
        max_depth=settings.limits.max_xml_depth,
        clock=clock,
    )
    if ledger is None:
        ledger = Ledger.open(settings.database.url, clock)
    if settings.audit.keyed:
        ledger.audit_key = audit_key.ensure(settings.keys_dir)
    return Gateway(
        settings=settings,
        ledger=ledger,
        transport=transport,
        signers=signers,
        verifier=verifier,
        schema=SchemaValidator(),
        adapters=load_adapters(settings),
        clock=clock,
    )
