"""The assembled gateway: settings, the components built from them, and the
features it runs, once.

Services take a ``Gateway`` and use its parts; nothing reads settings or
opens connections at import time, so tests build a Gateway of their own
(in-memory transport, a temporary ledger, a fixed clock, the features they
need). Features are handed to ``build`` as values (``gateway.features``
lists the standard set); the ledger creates their tables, the receiving
pipeline runs their appliers and the worker their jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from adapters import registry
from adapters.base import Adapter
from gateway.envelope.keys import ensure_identity
from gateway.envelope.schema import SchemaValidator
from gateway.envelope.signing import Signer, Verifier
from gateway.envelope.trust import TrustStore
from gateway.errors import ConfigError, UnknownAdapterError
from gateway.feature import Applier, Feature, Kit, appliers_by_type
from gateway.ledger import audit_key
from gateway.ledger.store import Ledger, utc_now
from gateway.model import MessageType
from gateway.outbox import Outbox
from gateway.settings import Settings
from gateway.transport.base import Transport
from gateway.transport.topology import REGIONAL, Topology, topology_for


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
    outbox: Outbox
    verifier: Verifier
    schema: SchemaValidator
    adapters: AdapterSet
    topology: Topology
    features: tuple[Feature, ...] = ()
    clock: Callable[[], datetime] = utc_now
    appliers: Mapping[MessageType, tuple[Applier, ...]] = field(default_factory=dict)

    @property
    def hosted(self) -> tuple[str, ...]:
        return self.settings.hosted

    @property
    def ledger_authorities(self) -> tuple[str, ...]:
        """Every authority a ledger row may be of: the region's (hosted here now, or
        once) and the regional group (its received copies). Named in a look-up by
        message id, they let the message-id index find it (``Caller.looks_in``)."""
        return (*sorted(self.settings.directory.authorities), REGIONAL)

    @property
    def signers(self) -> Mapping[str, Signer]:
        return self.outbox.signers

    def signer(self, code: str) -> Signer:
        return self.outbox.signer(code)

    def reconfigure(self, settings: Settings, adapters: AdapterSet, trust: TrustStore) -> None:
        """Put a reloaded region directory in force, with the adapters and trust built from it.

        The one place a built gateway changes (``services.directory_admin``
        validates everything first): each part is rebound whole, so a request
        or job that already took ``settings`` keeps a consistent set.
        """
        object.__setattr__(self, "settings", settings)  # frozen against accidents, not reloads
        object.__setattr__(self, "outbox", replace(self.outbox, trust=trust))
        self.verifier.replace_trust(trust)
        self.adapters.replace(adapters)

    @property
    def kit(self) -> Kit:
        """This gateway, as the narrow interface features are typed against."""
        return self

    def consumed_queues(self) -> list[str]:
        """Every queue this gateway consumes: the hosted inboxes, then the features' queues."""
        queues = [self.topology.inbox(code) for code in self.hosted]
        for feature in self.features:
            if feature.queues is not None:
                queues.extend(feature.queues(self.settings, self.topology))
        return list(dict.fromkeys(queues))


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
    features: Sequence[Feature] | None = None,
    ledger: Ledger | None = None,
    clock: Callable[[], datetime] = utc_now,
    create_keys: bool = False,
    trust: TrustStore | None = None,
) -> Gateway:
    """Assemble a gateway running ``features`` (the standard set when None).

    With ``create_keys`` missing keys of hosted authorities are made. The
    ledger (given or opened from the settings) is brought to the newest schema
    revision and must have the features' tables.
    ``trust`` replaces the trust store built from the settings (tests).
    """
    if features is None:
        from gateway.features import standard  # noqa: PLC0415 - the default set, when none given

        features = standard()
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
    trust = trust or TrustStore.from_settings(settings)
    verifier = Verifier(
        trust,
        max_bytes=settings.limits.max_message_bytes,
        max_depth=settings.limits.max_xml_depth,
        clock=clock,
    )
    tables = [t for f in features for t in f.tables]
    if ledger is None:
        ledger = Ledger.open(
            settings.database.url,
            clock,
            schemas=tables,
            pool_size=settings.database.pool_size,
            max_overflow=settings.database.max_overflow,
        )
    else:
        ledger.upgrade_schema(tables)
    if settings.audit.keyed:
        ledger.audit_key = audit_key.ensure(settings.keys_dir)
    return Gateway(
        settings=settings,
        ledger=ledger,
        transport=transport,
        outbox=Outbox(ledger, signers, trust, settings.encryption, clock),
        verifier=verifier,
        schema=SchemaValidator(),
        adapters=load_adapters(settings),
        topology=topology_for(settings.broker),
        features=tuple(features),
        clock=clock,
        appliers=appliers_by_type(features),
    )
