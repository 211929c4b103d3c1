"""What the gateway says when nothing answers at the broker address."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.errors import BrokerUnavailableError
from gateway.runtime import check_broker
from gateway.transport.link import unreachable

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_wrong_port_says_connection_refused_on_that_address_and_to_check_the_url() -> None:
    port = _closed_port()
    with pytest.raises(BrokerUnavailableError) as caught:
        check_broker(f"amqp://guest:guest@127.0.0.1:{port}/%2F", timeout_s=1)
    text = str(caught.value)
    assert f"nothing answers at 127.0.0.1:{port}" in text
    assert "Connection refused" in text
    assert "CAFGW_BROKER__URL" in text
    assert "rabbitmq-server" not in text


def test_only_the_local_default_broker_being_down_suggests_starting_rabbitmq() -> None:
    assert "rabbitmq-server -detached" in unreachable("127.0.0.1", 5672, "Connection refused")
    assert "rabbitmq-server -detached" in unreachable("localhost", 5672, "Connection refused")
    remote = unreachable("rabbit.example.org", 5672, "Name or service not known")
    assert "rabbitmq-server" not in remote and "rabbit.example.org:5672" in remote


def test_cafgw_broker_check_names_the_address_of_the_configured_url(tmp_path: Path) -> None:
    port = _closed_port()
    result = CliRunner().invoke(
        app,
        ["broker", "check", "--config", str(ROOT / "config")],
        env={"CAFGW_BROKER__URL": f"amqp://guest:guest@127.0.0.1:{port}/%2F"},
    )
    assert result.exit_code == 2
    assert f"nothing answers at 127.0.0.1:{port}" in result.output
    assert "rabbitmq-server" not in result.output
