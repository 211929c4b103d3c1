"""AMQPS and HTTPS (issue 13, item 9), on a RabbitMQ node of this module's own.

The node (``private_broker.PrivateBroker``: own node name, ports, data, log
and config files, never the machine's broker on 5672) gets a TLS listener on
a port of its own that demands a client certificate (``verify_peer``,
``fail_if_no_peer_cert``); the CA, the broker's certificate and the
gateway's client certificate are made here with ``cryptography``. Two
gateways (Dudley; Sandwell and Wolverhampton) exchange a record and its
receipts over AMQPS only. A client that does not trust the CA, or presents
no certificate, is refused. The API is served over HTTPS by the same
``uvicorn`` configuration ``cafgw run`` uses.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from gateway.errors import BrokerUnavailableError, ConfigError, TransportError
from gateway.ledger.status import Direction, Status
from gateway.ops.broker import RabbitProbe
from gateway.runtime import api_base, uvicorn_config
from gateway.services import outbound
from gateway.settings import ApiTls, BrokerSettings, BrokerTls, Settings
from gateway.transport.rabbit import RabbitTransport
from gateway.transport.reconnect import ReconnectPolicy
from gateway.transport.tls import context as tls_context
from tests.integration.gateways import make_settings, running, wait_for
from tests.integration.private_broker import PrivateBroker, pick_ports
from tests.integration.tls_certificates import Issued, ThrowawayCA

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DUDLEY = Path(__file__).resolve().parents[1] / "data" / "dudley-332" / "caf-register-2026-09.csv"
ONE_TRY = ReconnectPolicy(attempts=1, socket_timeout_s=5.0)


@dataclass(frozen=True)
class TlsNode:
    broker: PrivateBroker
    tls_port: int
    ca: Path
    client: Issued
    stranger_ca: Path  # a CA the broker never heard of
    stranger: Issued  # a client certificate that CA issued
    management_port: int  # the management API, over HTTPS only

    def amqps(self, vhost_url: str) -> str:
        """The amqps URL of guest on the vhost of ``vhost_url`` (an amqp URL of this node)."""
        vhost = vhost_url.rsplit("/", 1)[1]
        return f"amqps://guest:guest@127.0.0.1:{self.tls_port}/{vhost}"


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNode]:
    certs = tmp_path_factory.mktemp("certs")
    ca = ThrowawayCA(certs / "ca")
    server = ca.issue("broker", server=True)
    client = ca.issue("cafgw-client", server=False)
    stranger = ThrowawayCA(certs / "stranger", "stranger CA")
    broker = PrivateBroker(tmp_path_factory.mktemp("rabbitmq-tls"))
    tls_port, management_port = pick_ports(2)
    with (broker.base / "rabbitmq.conf").open("a") as conf:
        conf.write(
            f"listeners.ssl.1 = 127.0.0.1:{tls_port}\n"
            f"ssl_options.cacertfile = {ca.ca}\n"
            f"ssl_options.certfile = {server.cert}\n"
            f"ssl_options.keyfile = {server.key}\n"
            "ssl_options.verify = verify_peer\n"
            "ssl_options.fail_if_no_peer_cert = true\n"
            # The management API on an HTTPS listener only (no plain HTTP one).
            f"management.ssl.port = {management_port}\n"
            "management.ssl.ip = 127.0.0.1\n"
            f"management.ssl.cacertfile = {ca.ca}\n"
            f"management.ssl.certfile = {server.cert}\n"
            f"management.ssl.keyfile = {server.key}\n"
        )
    (broker.base / "enabled_plugins").write_text("[rabbitmq_management].\n")
    try:
        broker.start()
        yield TlsNode(
            broker,
            tls_port,
            ca.ca,
            client,
            stranger.ca,
            stranger.issue("stranger-client", server=False),
            management_port,
        )
    finally:
        with contextlib.suppress(Exception):
            broker.ctl("stop", timeout_s=60)  # rabbitmqctl -n NODE stop
        broker.close()  # whatever is left of the node, and its data


def _tls(node: TlsNode, *, ca: Path | None = None, client: Issued | None = None) -> BrokerTls:
    cert = client or node.client
    return BrokerTls(ca_file=ca or node.ca, cert_file=cert.cert, key_file=cert.key)


def _settings(tmp_path: Path, node: TlsNode, vhost_url: str, hosted: tuple[str, ...]) -> Settings:
    """One region's keys under ``tmp_path``; a ledger per gateway."""
    ledger = f"sqlite:///{tmp_path / ('ledger-' + '-'.join(hosted) + '.db')}"
    base = make_settings(tmp_path, hosted, ledger, vhost_url)
    broker = base.broker.model_copy(
        update={"url": node.amqps(vhost_url), "tls": _tls(node), "management_url": ""}
    )
    return base.model_copy(update={"broker": broker})


def test_two_gateways_exchange_a_record_and_its_receipts_over_amqps_only(
    tmp_path: Path, tls_node: TlsNode
) -> None:
    vhost_url = tls_node.broker.add_vhost()
    sender = _settings(tmp_path, tls_node, vhost_url, ("332",))
    receiver = _settings(tmp_path, tls_node, vhost_url, ("333", "336"))
    assert sender.broker.url.startswith("amqps://")
    with running(receiver) as region, running(sender) as dudley:
        with DUDLEY.open("rb") as stream:
            report = outbound.submit_local(dudley, "332", "dudley-csv", stream, DUDLEY.name)
        row = next(o for o in report.outcomes if o.case_ref == "DUD-2026-00417")

        def delivered() -> bool:
            records = [
                r
                for m in row.message_ids
                for r in dudley.ledger.find(message_id=m, direction=Direction.OUTBOUND)
            ]
            return len(records) == len(row.message_ids) and all(
                r.status == Status.DELIVERED for r in records
            )

        wait_for(delivered, timeout_s=60, what="receipts over AMQPS")
        assert region.ledger.inbox("336")


def test_a_client_that_does_not_trust_the_ca_is_refused(tmp_path: Path, tls_node: TlsNode) -> None:
    url = tls_node.amqps(tls_node.broker.add_vhost())
    transport = RabbitTransport(
        BrokerSettings(url=url, tls=_tls(tls_node, ca=tls_node.stranger_ca)), reconnect=ONE_TRY
    )
    try:
        with pytest.raises((BrokerUnavailableError, TransportError)) as refused:
            transport.declare(("336",))
        assert (
            "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
            or "certificate" in str(refused.value).lower()
        )
    finally:
        transport.close()


def test_a_client_whose_certificate_the_broker_does_not_trust_is_refused(
    tmp_path: Path, tls_node: TlsNode
) -> None:
    url = tls_node.amqps(tls_node.broker.add_vhost())
    transport = RabbitTransport(
        BrokerSettings(url=url, tls=_tls(tls_node, client=tls_node.stranger)), reconnect=ONE_TRY
    )
    try:
        with pytest.raises((BrokerUnavailableError, TransportError)):
            transport.declare(("336",))
    finally:
        transport.close()


def test_a_client_without_a_certificate_is_refused(tmp_path: Path, tls_node: TlsNode) -> None:
    url = tls_node.amqps(tls_node.broker.add_vhost())
    transport = RabbitTransport(
        BrokerSettings(url=url, tls=BrokerTls(ca_file=tls_node.ca)), reconnect=ONE_TRY
    )
    try:
        with pytest.raises((BrokerUnavailableError, TransportError)):
            transport.declare(("336",))
    finally:
        transport.close()


def test_tls_settings_with_a_plain_amqp_url_are_refused_at_start(tls_node: TlsNode) -> None:
    with pytest.raises(ValueError, match="must be amqps://"):
        BrokerSettings(url="amqp://guest:guest@127.0.0.1:5672/x", tls=_tls(tls_node))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_api_is_served_over_https_with_the_configured_certificate(
    tmp_path: Path, tls_node: TlsNode
) -> None:
    ca = ThrowawayCA(tmp_path / "api-ca", "api CA")
    server = ca.issue("api", server=True)
    base = make_settings(tmp_path, ("336",), f"sqlite:///{tmp_path / 'l.db'}", "amqp://x/")
    api = base.api.model_copy(
        update={
            "port": _free_port(),
            "tls": ApiTls(cert_file=server.cert, key_file=server.key),
        }
    )
    settings = base.model_copy(update={"api": api})
    app = FastAPI()
    app.get("/healthz")(lambda: {"ok": True})
    config = uvicorn_config(settings, app)
    http = uvicorn.Server(config)
    thread = threading.Thread(target=http.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not http.started and time.monotonic() < deadline:
            time.sleep(0.05)
        url = api_base(settings)
        assert url.startswith("https://")
        trusting = ssl.create_default_context(cafile=str(ca.ca))
        assert httpx.get(f"{url}/healthz", verify=trusting).json() == {"ok": True}
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", verify=ssl.create_default_context())  # system CAs only
        plain = url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{plain}/healthz")
    finally:
        http.should_exit = True
        thread.join(timeout=10)


def test_the_api_refuses_to_start_with_a_missing_certificate(tmp_path: Path) -> None:
    base = make_settings(tmp_path, ("336",), f"sqlite:///{tmp_path / 'l.db'}", "amqp://x/")
    missing = ApiTls(cert_file=tmp_path / "none.pem", key_file=tmp_path / "none.key")
    settings = base.model_copy(update={"api": base.api.model_copy(update={"tls": missing})})
    with pytest.raises(ConfigError, match=r"api\.tls: .*none\.pem"):
        uvicorn_config(settings, FastAPI())


def test_queue_figures_come_from_the_management_api_over_https_trusting_only_the_ca(
    tls_node: TlsNode,
) -> None:
    """The management API's requests carry the broker password: with broker.tls they go
    over HTTPS to a broker certificate the configured CA signed, never in clear."""
    vhost = tls_node.broker.add_vhost()
    broker = BrokerSettings(url=tls_node.amqps(vhost), tls=_tls(tls_node), declare_topology=True)
    transport = RabbitTransport(broker, reconnect=ONE_TRY)
    try:
        transport.declare(("336",))
    finally:
        transport.close()
    base = f"https://127.0.0.1:{tls_node.management_port}"
    queue = "caf.inbox.336"

    def stats(tls: BrokerTls | None, url: str = base) -> str:
        probe = RabbitProbe(broker.url, (queue,), management_url=url, tls=tls)
        found = probe.queue_stats()[queue]
        assert found is not None
        return found.source

    assert stats(_tls(tls_node)) == "management"
    # A client trusting another CA does not accept the listener (system CAs neither).
    stranger = tls_context(BrokerTls(ca_file=tls_node.stranger_ca))
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/api/overview", verify=stranger, timeout=3)
    # Plain HTTP to the HTTPS listener gets nothing; no plain listener is configured.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{tls_node.management_port}/api/overview", timeout=3)
    with pytest.raises(ValueError, match="management_url must be https://"):
        BrokerSettings(url=broker.url, tls=_tls(tls_node), management_url="http://127.0.0.1:1")
