"""Settings: read and validated once at start, then passed in.

``config/gateway.yaml`` holds the gateway's own settings and
``config/authorities.yaml`` the region directory. Environment variables
``CAFGW_<SECTION>__<KEY>`` override YAML values (``CAFGW_DATABASE__URL``).
A bad value is reported with the file and the dotted key that holds it.

A relative path is read against the folder of the file that holds it
(``gateway.yaml``, ``policy.yaml``, ``authorities.yaml``); one given in the
environment against the current directory; a default against the
configuration directory. ``secrets_dir`` names the one directory that holds
an authority's signing keys and secrets, shared by all its replicas.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse, urlunparse

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.backoff import Backoff
from gateway.errors import ConfigError
from gateway.model import CaseStatus, ConsentScope, LegalBasis, MessageType, Purpose

ENV_PREFIX = "CAFGW_"
# What an outbox claim outlasts its publish's confirm timeout by: the publisher's
# wait for an abandoned batch (2 s) and the bookkeeping after it.
OUTBOX_LEASE_MARGIN_S = 5.0


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Contact(_Frozen):
    name: str
    email: str | None = None
    role: str | None = None


class ConnectorSettings(_Frozen):
    kind: Literal["pull", "webhook", "file"] = "pull"
    url: str | None = None
    hmac_secret_file: str | None = None
    directory: str | None = None

    @model_validator(mode="after")
    def _needs_target(self) -> ConnectorSettings:
        if self.kind == "webhook" and not self.url:
            raise ValueError("a webhook connector needs 'url'")
        if self.kind == "webhook" and not self.hmac_secret_file:
            # Secure by default: the local system must be able to tell our POSTs from forgeries.
            raise ValueError(
                "a webhook connector needs 'hmac_secret_file' (a file outside the repo)"
            )
        if self.kind == "webhook" and self.url:
            parsed = urlparse(self.url)
            loopback = parsed.hostname in ("127.0.0.1", "::1", "localhost")
            if parsed.scheme != "https" and not (parsed.scheme == "http" and loopback):
                raise ValueError(
                    f"webhook url {self.url!r}: must be https (plain http only to 127.0.0.1)"
                )
        if self.kind == "file" and not self.directory:
            raise ValueError("a file connector needs 'directory'")
        return self


LocalRendering = Literal["adapter", "json", "canonical"]
# Types an authority's own format has a place for: the record, and the notices about one
# (``gateway/services/local_notices.py``; a correction is its replacement record).
ADAPTER_TYPES = frozenset(
    {
        MessageType.ASSESSMENT.value,
        MessageType.CORRECTION.value,
        MessageType.RECALL.value,
        MessageType.ERASURE_REQUEST.value,
    }
)


class Authority(_Frozen):
    code: str
    name: str
    adapter: str | None = None
    certificate: str | None = None
    coordinator: Contact
    line_manager: Contact
    connector: ConnectorSettings = ConnectorSettings()
    local_formats: Mapping[str, LocalRendering] = Field(default_factory=dict)
    """How ``GET /v1/inbox?format=local`` serves each message type: ``adapter`` (the
    authority's own format, for ``ADAPTER_TYPES``), ``json`` (the documented JSON
    form) or ``canonical``; ``default`` for the types not named that the adapter
    has no place for."""

    @model_validator(mode="after")
    def _renderings(self) -> Authority:
        known = {t.value for t in MessageType} | {"default"}
        for name, how in self.local_formats.items():
            if name not in known:
                raise ValueError(
                    f"local_formats.{name}: not a message type (one of {', '.join(sorted(known))})"
                )
            if how == "adapter" and name not in ADAPTER_TYPES:
                raise ValueError(
                    f"local_formats.{name}: an adapter writes only "
                    f"{' and '.join(sorted(ADAPTER_TYPES))}; use json or canonical"
                )
            if how == "adapter" and self.adapter is None:
                raise ValueError(f"local_formats.{name}: adapter, but the authority has none")
        return self

    def local_format(self, message_type: str) -> LocalRendering:
        """How this authority's local system is served a ``message_type``."""
        if message_type in self.local_formats:
            return self.local_formats[message_type]
        if message_type in ADAPTER_TYPES and self.adapter is not None:
            return "adapter"
        return self.local_formats.get("default", "json")


class RegionalGroup(_Frozen):
    name: str
    email: str | None = None


class Directory(_Frozen):
    """The region directory from ``authorities.yaml``."""

    regional_group: RegionalGroup
    authorities: Mapping[str, Authority]

    def get(self, code: str) -> Authority:
        try:
            return self.authorities[code]
        except KeyError:
            raise ConfigError(
                f"authority {code!r} is not in the region directory (authorities.yaml)"
            ) from None

    def __contains__(self, code: object) -> bool:
        return code in self.authorities


class BrokerTls(_Frozen):
    """AMQPS: the CA that signed the broker's certificate and this gateway's client
    certificate and key (PEM files), for ``amqps://`` URLs."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    # The name the broker's certificate must carry; None: the URL's host.
    server_name: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> BrokerTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("broker.tls: cert_file and key_file go together")
        return self


DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


class BrokerSettings(_Frozen):
    # One node: ``url``. A RabbitMQ cluster: ``urls``, one per node (same account and
    # vhost, another host or port), tried in turn; ``url`` is then the first of them.
    url: str = DEFAULT_BROKER_URL
    urls: tuple[str, ...] = ()
    # Replicas of every quorum queue (x-quorum-initial-group-size; at most the
    # cluster's size is used). None: the argument is not sent and RabbitMQ's default
    # applies. Fixed when a queue is created: see docs/delivery.md before changing it.
    replication_factor: int | None = Field(default=None, ge=1)
    exchange: str = "caf.exchange"
    escalation_exchange: str = "caf.escalation"
    prefetch: int = Field(default=200, ge=1)
    # How long one publish of a batch of the outbox waits for the broker's confirms;
    # what is unconfirmed then stays in the outbox and is published again later.
    confirm_timeout_s: float = Field(default=30.0, gt=0)
    # False when the gateway connects with a per-authority account (cafgw broker
    # setup), which may not declare exchanges: the administrator's setup did.
    declare_topology: bool = True
    # RabbitMQ's management HTTP API, for queue figures on the dashboard and in
    # /metrics (ready, unacknowledged, consumers). None: the broker host on port
    # 15672 (https on 15671 with broker.tls, trusting broker.tls.ca_file) with the
    # broker URL's credentials; "" turns it off (passive declares).
    management_url: str | None = None
    # The gateway's relay account (``cafgw broker setup`` makes it): the only
    # account that writes the retry, parking and requeue exchanges (retry and
    # park copies, replays). None: broker.url's account does (one account for
    # everything, e.g. a development broker). Authority accounts cannot.
    relay_url: str | None = None
    # Broker user names are ``<user_prefix><vhost tag>-<code>`` (per vhost).
    user_prefix: str = "cafgw-"
    # The broker account that publishes for an authority, where it is not the
    # per-vhost account ``cafgw broker setup`` names (e.g. a gateway hosting
    # several authorities under one account): code -> user name.
    publishers: dict[str, str] = Field(default_factory=dict)
    # AMQPS (the URLs must then be amqps://): CA, client certificate and key.
    tls: BrokerTls | None = None

    @model_validator(mode="after")
    def _tls_urls(self) -> BrokerSettings:
        if self.tls is not None:
            for name, url in (("url", self.url), ("relay_url", self.relay_url)):
                if url is not None and urlparse(url).scheme != "amqps":
                    raise ValueError(f"broker.tls is set, so broker.{name} must be amqps://")
            if self.management_url and urlparse(self.management_url).scheme != "https":
                # Its requests carry the broker account's password (HTTP basic auth).
                raise ValueError(
                    "broker.tls is set, so broker.management_url must be https:// "
                    '(or "" to read queue figures by passive declares)'
                )
        return self

    @model_validator(mode="before")
    @classmethod
    def _url_is_first_node(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("urls"):
            return data
        urls = data["urls"]
        if isinstance(urls, str):  # CAFGW_BROKER__URLS="amqp://a,amqp://b"
            urls = [u.strip() for u in urls.split(",") if u.strip()]
        url = data.get("url")
        if url is not None and url != urls[0]:
            raise ValueError(
                f"broker.url {url!r} is not the first of broker.urls: give only broker.urls "
                "(a cluster's nodes, the first of which is broker.url)"
            )
        return {**data, "url": urls[0], "urls": tuple(urls)}

    @model_validator(mode="after")
    def _one_cluster(self) -> BrokerSettings:
        seen = {_account_of(u) for u in self.nodes}
        if len(seen) > 1:
            raise ValueError(
                "broker.urls must name one account and vhost on every node (users and "
                "vhosts are cluster-wide); only the host and port may differ"
            )
        return self

    @property
    def nodes(self) -> tuple[str, ...]:
        """The broker's nodes, to try in this order (``url`` alone for one node)."""
        return self.urls or (self.url,)

    @property
    def relay_nodes(self) -> tuple[str, ...]:
        """The relay account on every node: ``relay_url`` first, then each other node
        of ``nodes`` with the relay's user and password (accounts are cluster-wide),
        so retry and park copies go on when ``relay_url``'s node is down. Empty
        without ``relay_url``."""
        if self.relay_url is None:
            return ()
        relay = urlparse(self.relay_url)
        found = [self.relay_url]
        for node in self.nodes:
            at = urlparse(node)
            if (at.hostname, at.port) == (relay.hostname, relay.port):
                continue
            host = at.netloc.rpartition("@")[2]
            userinfo = relay.netloc.rpartition("@")[0]
            found.append(
                urlunparse(relay._replace(netloc=f"{userinfo}@{host}" if userinfo else host))
            )
        return tuple(found)


def _account_of(url: str) -> tuple[str, str | None, str | None, str]:
    parsed = urlparse(url)
    return parsed.scheme, parsed.username, parsed.password, parsed.path


class DatabaseSettings(_Frozen):
    url: str = "sqlite:///var/ledger.db"
    # PostgreSQL connections per gateway process: up to pool_size + max_overflow.
    # With replicas, keep their sum within the server's max_connections (100 by default).
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    # On PostgreSQL the worker's loops sleep until a commit's NOTIFY wakes them
    # (gateway.ledger.listener) and look again unwoken only after this long.
    fallback_poll_s: float = Field(default=15.0, gt=0)
    # On PostgreSQL a periodic job (re-sends, disputes clock, acknowledgement deadline,
    # retention, audit anchors: work that falls due with time) that found nothing
    # looks again after at least this long; each look is a transaction or two.
    job_poll_s: float = Field(default=2.0, gt=0)
    # A process claims the outbox rows it publishes for this long: if it dies
    # mid-publish, another replica publishes them once the lease has run out.
    # At least broker.confirm_timeout_s + OUTBOX_LEASE_MARGIN_S (checked at load).
    outbox_lease_s: float = Field(default=40.0, gt=0)


class ApiTls(_Frozen):
    """HTTPS for the API and dashboard: the server's certificate (chain) and key (PEM)."""

    cert_file: Path
    key_file: Path


class ApiSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # None: plain HTTP (put it behind a TLS proxy, or set this).
    tls: ApiTls | None = None
    # requests per minute per API key (a key may carry its own: cafgw api-keys issue --rate)
    rate_per_minute: int = Field(default=600, ge=1)


class Limits(_Frozen):
    max_message_bytes: int = Field(default=2_000_000, ge=1024)
    max_xml_depth: int = Field(default=64, ge=8)
    future_skew_s: int = Field(default=60, ge=0)
    max_age_s: int = Field(default=14 * 24 * 3600, ge=60)
    # A local export submitted to POST /v1/messages?adapter= (docs/security.md, "Uploads"):
    # over any of these it is refused, naming the limit, before a record is converted.
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    max_upload_columns: int = Field(default=2000, ge=1)
    max_upload_line_bytes: int = Field(default=1024 * 1024, ge=256)
    max_upload_records: int = Field(default=200_000, ge=1)
    # conversions running at once (each in a worker thread, off the event loop)
    upload_conversions: int = Field(default=2, ge=1)
    # the free text of a dispute (opening and each comment), in characters
    max_comment_chars: int = Field(default=20_000, ge=100)


class DeliverySettings(_Frozen):
    receipt_deadline_s: float = Field(default=60, gt=0)
    resend_budget: int = Field(default=5, ge=0)
    retry_budget: int = Field(default=5, ge=0)
    retry_backoff_s: tuple[float, ...] = (1, 5, 30, 120, 600)
    local_ack_deadline_s: float = Field(default=5 * 24 * 3600, gt=0)
    # Local connectors (webhook, file drop): pause before handover try n+1 while the
    # local system fails; the last step repeats until local_ack_deadline_s passes.
    local_retry_backoff_s: tuple[float, ...] = Field(default=(1, 2, 5, 10, 30, 60), min_length=1)
    local_timeout_s: float = Field(default=10, gt=0)
    # Access notices (docs/data-protection.md): tell each record's sender when this
    # authority's local system took it or it was read through the API, in one signed
    # AccessNotice per sender at most every access_notice_batch_s.
    access_notices: bool = False
    access_notice_batch_s: float = Field(default=60, gt=0)

    def resend_backoff(self) -> Backoff:
        """A send waits ``receipt_deadline_s`` for its receipt, ``resend_budget`` re-sends."""
        return Backoff.constant(self.receipt_deadline_s, budget=self.resend_budget + 1)

    def local_backoff(self) -> Backoff:
        """Pauses between failed handovers to a local system (the last one repeats)."""
        return Backoff(tuple(float(s) for s in self.local_retry_backoff_s), jitter=0.2)

    def retry_window_s(self) -> float:
        """The longest a message is retried at its recipient before it is parked: every
        retry's delay in full (the last step repeats; jitter only shortens them)."""
        if not self.retry_backoff_s:
            return 0.0
        delays = Backoff(tuple(float(s) for s in self.retry_backoff_s))
        return sum(delays.wait_s(n) for n in range(1, self.retry_budget + 1))

    def worst_case_s(self, recipient_window_s: float | None = None) -> float:
        """How long a message may keep being retried or re-sent at most: each of its
        ``resend_budget`` + 1 sends waits while that copy may still be retried at its
        recipient (``services.backlog``: the recipient's retry window, this section's own
        when None, and a receipt deadline, looked at once a deadline, so up to one
        more), a backlog at the recipient aside."""
        window_s = self.retry_window_s() if recipient_window_s is None else recipient_window_s
        return (self.resend_budget + 1) * (window_s + 2 * self.receipt_deadline_s)


class TrustSettings(_Frozen):
    """How peers' certificates are trusted (see ``gateway.envelope.trust``)."""

    regional_ca: Path | None = None
    """PEM file of a regional CA; a certificate it issued, with the sender's LA
    code as the subject ``serialNumber``, is trusted for that sender."""
    expiry_warning_days: int = Field(default=30, ge=1)


class EncryptionSettings(_Frozen):
    """End-to-end body encryption, switched on per pair of authorities."""

    pairs: tuple[tuple[str, str], ...] = ()
    """Unordered pairs of LA codes whose messages carry an ``EncryptedBody``."""

    def between(self, sender: str, recipient: str) -> bool:
        """True when messages between these two authorities must be encrypted."""
        return any({sender, recipient} == {a, b} for a, b in self.pairs)


class AuditSettings(_Frozen):
    """The audit chain (docs/security.md, Audit)."""

    # HMAC-SHA256 under <keys_dir>/audit-chain.key (made on first start) instead of plain
    # SHA-256, so write access to the database alone cannot recompute a rewritten chain.
    keyed: bool = True
    # How often the worker checks the chain against the heads peers hold (seconds).
    anchor_check_s: float = Field(default=60, gt=0)
    # Receipts carry this gateway's chain head and give peers' heads back
    # (gateway.ledger.audit_anchor). A peer on a version whose schema has no
    # AuditHead refuses such receipts: switch off until every peer is upgraded.
    heads_in_receipts: bool = True


DISPUTE_STAGES = ("PRACTITIONERS", "COORDINATORS", "REGIONAL_GROUP", "LINE_MANAGERS")


class DisputeSettings(_Frozen):
    """The dispute escalation ladder: working days per stage, the regional stage on/off."""

    # stage -> working days (England and Wales bank holidays excluded) before it escalates
    working_days: Mapping[str, int] = Field(
        default_factory=lambda: {
            "PRACTITIONERS": 10,
            "COORDINATORS": 10,
            "REGIONAL_GROUP": 10,
            "LINE_MANAGERS": 10,
        }
    )
    regional_stage: bool = True
    # a deadline falls at this local time (Europe/London) of its last working day
    end_of_day: str = Field(default="17:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    timezone: str = "Europe/London"
    # this gateway consumes the regional group's escalation queue (exactly one should)
    consume_regional: bool = False
    # a line manager who has not acknowledged an escalation is sent it again after this...
    ack_deadline_s: float = Field(default=2 * 24 * 3600, gt=0)
    # ...this many times; then the escalation is shown as overdue
    resend_budget: int = Field(default=3, ge=0)

    def escalation_backoff(self) -> Backoff:
        """An escalation is offered, then again every ``ack_deadline_s``, ``resend_budget``
        times, until someone acknowledges it."""
        return Backoff.constant(self.ack_deadline_s, budget=self.resend_budget + 1)

    @model_validator(mode="before")
    @classmethod
    def _fill_stages(cls, data: Any) -> Any:
        # A stage left out of the YAML keeps its default rather than failing.
        if isinstance(data, dict) and isinstance(data.get("working_days"), dict):
            defaults = {stage: 10 for stage in DISPUTE_STAGES}
            data = {**data, "working_days": {**defaults, **data["working_days"]}}
        return data

    @model_validator(mode="after")
    def _stages(self) -> DisputeSettings:
        unknown = sorted(set(self.working_days) - set(DISPUTE_STAGES))
        if unknown:
            raise ValueError(
                f"working_days: unknown stage(s) {unknown}; stages are {list(DISPUTE_STAGES)}"
            )
        for stage, days in self.working_days.items():
            if days < 1:
                raise ValueError(f"working_days.{stage}: must be at least 1 working day")
        return self


# --- the cross-border policy (config/policy.yaml) -----------------------------

SpecialField = Literal["ethnicity", "religion", "health_notes"]


class SafeguardingApprover(BaseModel):
    """A person an authority lists as able to approve sharing on the safeguarding basis."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=200)


class PolicySettings(BaseModel):
    """The cross-border policy knobs (see docs/policy.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    purpose_scopes: Mapping[Purpose, tuple[ConsentScope, ...]] = Field(
        default_factory=lambda: {p: (ConsentScope.SHARE_CROSS_BORDER,) for p in Purpose}
    )
    special_category: Mapping[Purpose, frozenset[SpecialField]] = Field(default_factory=dict)
    review_after_days: int = Field(default=28, ge=1, le=365)
    existence_key_file: Path = Path("var/secrets/regional-existence.key")
    # Who may approve a safeguarding-basis share, per authority: the directory each LA
    # maintains (docs/security.md, "Existence queries"). Anyone else is refused.
    safeguarding_approvers: Mapping[str, tuple[SafeguardingApprover, ...]] = Field(
        default_factory=dict
    )
    # Safeguarding-basis existence queries per requesting authority per 24 hours, counted
    # by the asking gateway (its own) and by the asked one (each requester's).
    existence_safeguarding_per_day: int = Field(default=5, ge=0)
    # Consent-basis existence queries the asked gateway answers per requesting authority
    # per 24 hours: the consent a query claims cannot be checked there.
    existence_consent_per_day: int = Field(default=20, ge=0)
    # Hold every safeguarding-basis existence query received for the coordinator's
    # approval (GET /v1/existence-queries-held, cafgw existence held) instead of
    # answering it automatically.
    existence_safeguarding_hold: bool = False

    def existence_budget(self, basis: LegalBasis) -> tuple[int, str]:
        """How many existence queries on ``basis`` one requester may ask per 24 hours,
        and the setting that says so: the safeguarding budget, or the consent one for
        any other basis (which the asked gateway cannot check). The asking and the
        asked gateway both count by it."""
        if basis == LegalBasis.SAFEGUARDING:
            return self.existence_safeguarding_per_day, "existence_safeguarding_per_day"
        return self.existence_consent_per_day, "existence_consent_per_day"

    def approver(self, authority: str, name: str) -> SafeguardingApprover | None:
        """``name`` as listed among ``authority``'s safeguarding approvers, else None."""
        wanted = " ".join(name.split()).casefold()
        for listed in self.safeguarding_approvers.get(authority, ()):
            if " ".join(listed.name.split()).casefold() == wanted:
                return listed
        return None

    def scopes_for(self, purpose: Purpose) -> tuple[ConsentScope, ...]:
        """Consent scopes any one of which covers ``purpose`` (cross-border)."""
        return self.purpose_scopes.get(purpose, (ConsentScope.SHARE_CROSS_BORDER,))

    def special_fields(self, purpose: Purpose | None) -> frozenset[SpecialField]:
        if purpose is None:
            return frozenset()
        return self.special_category.get(purpose, frozenset())


# --- retention (config/retention.yaml) ------------------------------------------

UNKNOWN_STATE = "UNKNOWN"
DEFAULT = "default"
STATES = (*(s.value for s in CaseStatus), UNKNOWN_STATE)
SIX_YEARS_DAYS = 6 * 365


class RetentionSettings(BaseModel):
    """How long each kind of message keeps its personal data (days)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case_records: Mapping[str, Mapping[str, int]] = Field(
        default_factory=lambda: {UNKNOWN_STATE: {DEFAULT: SIX_YEARS_DAYS}}
    )
    held_local_days: int = Field(default=90, ge=1)
    rejected_days: int = Field(default=30, ge=1)
    quarantined_days: int = Field(default=180, ge=1)
    dead_letter_days: int = Field(default=90, ge=1)
    existence_held_days: int = Field(default=30, ge=1)
    """A held existence query's keyed hashes, approver and reason, from its last change
    (its decision; its arrival while undecided, when it is closed ``EXPIRED``)."""
    no_personal_data_days: int = Field(default=SIX_YEARS_DAYS, ge=1)
    interval_s: float = Field(default=3600, gt=0)
    batch: int = Field(default=500, ge=1, le=10_000)

    @field_validator("case_records")
    @classmethod
    def _known(cls, value: Mapping[str, Mapping[str, int]]) -> Mapping[str, Mapping[str, int]]:
        types = {t.value for t in MessageType} | {DEFAULT}
        for state, periods in value.items():
            if state not in STATES:
                raise ValueError(f"unknown case state {state!r}; states are {list(STATES)}")
            for name, days in periods.items():
                if name not in types:
                    raise ValueError(
                        f"{state}.{name}: unknown message type; use one of {sorted(types)}"
                    )
                if days < 1:
                    raise ValueError(f"{state}.{name}: must be at least 1 day")
        if DEFAULT not in value.get(UNKNOWN_STATE, {}):
            raise ValueError(f"{UNKNOWN_STATE}.{DEFAULT} must be set (the fallback period)")
        return value

    def case_days(self, state: str, message_type: str) -> tuple[int, str]:
        """Days a case record keeps its personal data, and the rule that says so."""
        for where in (state, UNKNOWN_STATE):
            periods = self.case_records.get(where, {})
            for name in (message_type, DEFAULT):
                if name in periods:
                    return periods[name], f"case_records.{where}.{name}"
        raise AssertionError("UNKNOWN.default is checked when the settings are read")


class Settings(_Frozen):
    """Everything the gateway reads at start."""

    config_dir: Path
    broker: BrokerSettings = BrokerSettings()
    database: DatabaseSettings = DatabaseSettings()
    hosted: tuple[str, ...] = ()
    secrets_dir: Path | None = None
    """One directory for the signing keys and secrets of this gateway's authorities
    (``keys/``, ``api-keys.json``, ``regional-existence.key``): every replica mounts the
    same one. Sets the defaults of ``keys_dir``, ``api_keys_file`` and
    ``policy.existence_key_file``; each can still be given on its own."""
    keys_dir: Path = Path("var/keys")
    api_keys_file: Path = Path("var/api-keys.json")
    authorities_file: Path = Path("authorities.yaml")
    adapters_dir: Path = Path("adapters")
    peers_dir: Path = Path("peers")
    """Peers' certificates pinned by ``cafgw peers add``: ``<peers_dir>/<code>.pem``."""
    api: ApiSettings = ApiSettings()
    limits: Limits = Limits()
    delivery: DeliverySettings = DeliverySettings()
    delivery_overrides: Mapping[str, DeliverySettings] = Field(default_factory=dict)
    trust: TrustSettings = TrustSettings()
    encryption: EncryptionSettings = EncryptionSettings()
    disputes: DisputeSettings = DisputeSettings()
    cpu_budget: bool = False
    """Per-stage CPU timers (``gateway.cpu_budget``, on /metrics); ``make bench`` turns them
    on for its budget row (about 4 % of a message's CPU)."""
    check_processes: int = Field(0, ge=0, le=32)
    """Worker processes that share each large received batch's checks (signature,
    schema, decoding) with the consuming thread, so receiving uses more than one
    core (``services.receiving.check_pool``); 0: the consuming thread checks alone."""
    audit: AuditSettings = AuditSettings()
    policy: PolicySettings = PolicySettings()
    """The cross-border policy, from ``policy.yaml`` beside ``gateway.yaml``."""
    retention: RetentionSettings = RetentionSettings()
    """Retention periods, from ``retention.yaml`` beside ``gateway.yaml``."""
    directory: Directory

    def delivery_for(self, code: str) -> DeliverySettings:
        return self.delivery_overrides.get(code, self.delivery)

    def longest_retry_window_s(self) -> float:
        """The longest retry window any ``delivery`` section here gives (a sender waits
        by its recipient's, ``services.backlog``)."""
        sections = (self.delivery, *self.delivery_overrides.values())
        return max(d.retry_window_s() for d in sections)

    def worst_case_s(self, code: str) -> float:
        """``code``'s ``DeliverySettings.worst_case_s`` towards the recipient that retries
        longest."""
        return self.delivery_for(code).worst_case_s(self.longest_retry_window_s())

    @model_validator(mode="after")
    def _check(self) -> Settings:
        lease, confirm = self.database.outbox_lease_s, self.broker.confirm_timeout_s
        if lease < confirm + OUTBOX_LEASE_MARGIN_S:
            raise ValueError(
                f"database.outbox_lease_s ({lease:g}) must be at least "
                f"broker.confirm_timeout_s ({confirm:g}) + {OUTBOX_LEASE_MARGIN_S:g} s: "
                "a claim that ran out while its publish still waited for confirms would "
                "let another replica publish the same messages"
            )
        for code in self.hosted:
            if code not in self.directory:
                raise ValueError(f"hosted: {code!r} is not in authorities.yaml")
        for a, b in self.encryption.pairs:
            for code in (a, b):
                if code not in self.directory:
                    raise ValueError(f"encryption.pairs: {code!r} is not in authorities.yaml")
        longest = self.longest_retry_window_s()
        for code, delivery in {"default": self.delivery, **self.delivery_overrides}.items():
            worst_s = delivery.worst_case_s(longest)
            if worst_s >= self.limits.max_age_s:
                raise ValueError(
                    f"limits.max_age_s ({self.limits.max_age_s}) must exceed the retry "
                    f"budget of {code} ({worst_s:.0f} s), or re-sent "
                    "messages would be refused as stale"
                )
        return self


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG_DIR":
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        target = data
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                raise ConfigError(f"environment {name}: {key!r} is not a section")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        target[keys[-1]] = value


def _env_broker_wins(data: dict[str, Any], env: Mapping[str, str]) -> None:
    """CAFGW_BROKER__URL replaces the file's broker.urls, and CAFGW_BROKER__URLS its
    broker.url: the environment names the nodes, whichever form the file used."""
    broker = data.get("broker")
    if not isinstance(broker, dict):
        return
    url, urls = ENV_PREFIX + "BROKER__URL", ENV_PREFIX + "BROKER__URLS"
    if url in env and urls not in env:
        broker.pop("urls", None)
    elif urls in env and url not in env:
        broker.pop("url", None)


def _describe(exc: ValidationError, path: Path) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{path}: {key}: {err['msg']}")
    return "\n".join(lines)


def load_directory(path: Path) -> Directory:
    """Read ``authorities.yaml``; relative paths in it are read against its folder."""
    data = _read_yaml(path)
    raw = data.get("authorities")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: authorities: expected a mapping of LA code to authority")
    base = path.parent
    entries: dict[str, Any] = {}
    for code, given in raw.items():
        entry = dict(given or {})
        if isinstance(entry.get("certificate"), str):
            entry["certificate"] = str(_under(base, Path(entry["certificate"])))
        connector = entry.get("connector")
        if isinstance(connector, dict):
            entry["connector"] = {
                key: str(_under(base, Path(value)))
                if key in ("hmac_secret_file", "directory") and isinstance(value, str)
                else value
                for key, value in connector.items()
            }
        entries[str(code)] = {"code": str(code), **entry}
    try:
        return Directory.model_validate(
            {
                "regional_group": data.get("regional_group", {"name": "Regional group"}),
                "authorities": entries,
            }
        )
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc


# Settings that name a file or folder, as (section, key) paths into the YAML.
_PATH_KEYS: tuple[tuple[str, ...], ...] = (
    ("secrets_dir",),
    ("keys_dir",),
    ("api_keys_file",),
    ("authorities_file",),
    ("adapters_dir",),
    ("peers_dir",),
    ("trust", "regional_ca"),
    ("policy", "existence_key_file"),
    ("broker", "tls", "ca_file"),
    ("broker", "tls", "cert_file"),
    ("broker", "tls", "key_file"),
    ("api", "tls", "cert_file"),
    ("api", "tls", "key_file"),
)
_SQLITE = "sqlite:///"


def _anchor(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``data`` with every relative path it names made absolute against ``base``."""
    for keys in _PATH_KEYS:
        section = data
        for key in keys[:-1]:
            inner = section.get(key)
            if not isinstance(inner, dict):
                break
            section = inner
        else:
            value = section.get(keys[-1])
            if isinstance(value, (str, Path)):
                section[keys[-1]] = str(_under(base, Path(value)))
    database = data.get("database")
    if isinstance(database, dict) and isinstance(database.get("url"), str):
        database["url"] = _sqlite_under(base, database["url"])
    return data


def _merge(into: dict[str, Any], data: Mapping[str, Any], where: str) -> None:
    for key, value in data.items():
        if isinstance(value, dict):
            target = into.setdefault(key, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{where}: {key!r} is not a section")
            _merge(target, value, where)
        else:
            into[key] = value


def _secrets_defaults(data: dict[str, Any]) -> None:
    """What lives in ``secrets_dir`` unless named on its own."""
    secrets = data.get("secrets_dir")
    if not isinstance(secrets, str):
        return
    folder = Path(secrets)
    data.setdefault("keys_dir", str(folder / "keys"))
    data.setdefault("api_keys_file", str(folder / "api-keys.json"))
    policy = data.setdefault("policy", {})
    if isinstance(policy, dict):
        policy.setdefault("existence_key_file", str(folder / "regional-existence.key"))


def load_settings(
    config_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read ``gateway.yaml``, ``authorities.yaml``, ``policy.yaml`` and ``retention.yaml``
    from ``config_dir``: every setting, once, in one place.

    A relative path is read against the folder of the file that names it; from
    ``env``, against the current directory; left to its default (or given in
    ``overrides``), against ``config_dir``.
    """
    env = os.environ if env is None else env
    if config_dir is None:
        config_dir = Path(env.get(ENV_PREFIX + "CONFIG_DIR", "config"))
    config_dir = config_dir.resolve()
    path = config_dir / "gateway.yaml"
    data = _read_yaml(path)
    for section, name, model in (
        ("policy", "policy.yaml", PolicySettings),
        ("retention", "retention.yaml", RetentionSettings),
    ):
        if section not in data and (config_dir / name).exists():
            # Its own file, validated on its own so that an error names that file.
            raw = _read_yaml(config_dir / name)
            try:
                model.model_validate(raw)
            except ValidationError as exc:
                raise ConfigError(_describe(exc, config_dir / name)) from exc
            data[section] = raw
    _anchor(data, config_dir)
    from_env: dict[str, Any] = {}
    _apply_env(from_env, env)
    _env_broker_wins(data, env)
    _merge(data, _anchor(from_env, Path.cwd()), "environment")
    for key, value in (overrides or {}).items():
        data[key] = copy.deepcopy(value)
    _anchor(data, config_dir)
    _secrets_defaults(data)
    directory_path = _under(config_dir, Path(data.get("authorities_file", "authorities.yaml")))
    directory = load_directory(directory_path.resolve())
    overrides_raw = data.pop("authority_delivery", {}) or {}
    if not isinstance(overrides_raw, dict):
        raise ConfigError(f"{path}: authority_delivery: expected a mapping of LA code to settings")
    # An authority's override changes only the keys it names; the rest come from `delivery`.
    base_delivery = data.get("delivery") or {}
    overrides_raw = {
        str(code): {**base_delivery, **(entry or {})} for code, entry in overrides_raw.items()
    }
    for code in overrides_raw:
        if code not in directory:
            raise ConfigError(f"{path}: authority_delivery.{code}: not in authorities.yaml")
    try:
        settings = Settings.model_validate(
            {
                **data,
                "config_dir": config_dir,
                "directory": directory,
                "delivery_overrides": overrides_raw,
            }
        )
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc
    # Defaults are relative: they belong to the configuration directory.
    return settings.model_copy(
        update={
            "keys_dir": _under(config_dir, settings.keys_dir),
            "api_keys_file": _under(config_dir, settings.api_keys_file),
            "adapters_dir": _under(config_dir, settings.adapters_dir),
            "peers_dir": _under(config_dir, settings.peers_dir),
            # Only the URL moves: every other database key stays as read (a new
            # DatabaseSettings here once dropped the pool sizes and poll intervals).
            "database": settings.database.model_copy(
                update={"url": _sqlite_under(config_dir, settings.database.url)}
            ),
            "policy": settings.policy.model_copy(
                update={
                    "existence_key_file": _under(config_dir, settings.policy.existence_key_file)
                }
            ),
        }
    )


def _under(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base / path)


def _sqlite_under(base: Path, url: str) -> str:
    if url.startswith(_SQLITE) and not url.startswith(_SQLITE + "/") and ":memory:" not in url:
        return _SQLITE + str(base / url[len(_SQLITE) :])
    return url
