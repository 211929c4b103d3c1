"""TLS settings (issue 13, item 9): read once at start, paths against the config file.

The connections themselves are tested on a RabbitMQ node of their own
(``tests/integration/test_tls.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.errors import ConfigError
from gateway.ops.broker import management_base
from gateway.settings import BrokerTls, load_settings
from gateway.transport.tls import context

ROOT = Path(__file__).resolve().parents[2]
REGION = (ROOT / "config" / "authorities.yaml").read_text(encoding="utf-8")


def _config(folder: Path, gateway: dict[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gateway.yaml").write_text(yaml.safe_dump(gateway), encoding="utf-8")
    (folder / "authorities.yaml").write_text(REGION, encoding="utf-8")
    return folder


def test_tls_files_are_read_against_the_config_files_folder(tmp_path: Path) -> None:
    config = _config(
        tmp_path / "dudley",
        {
            "hosted": ["332"],
            "broker": {
                "url": "amqps://cafgw:pw@broker.example:5671/region",
                "tls": {
                    "ca_file": "tls/ca.pem",
                    "cert_file": "tls/me.pem",
                    "key_file": "tls/me.key",
                },
            },
            "api": {"tls": {"cert_file": "tls/api.pem", "key_file": "tls/api.key"}},
        },
    )
    settings = load_settings(config, env={})
    tls = settings.broker.tls
    assert tls is not None and settings.api.tls is not None
    assert (tls.ca_file, tls.cert_file, tls.key_file) == (
        config / "tls/ca.pem",
        config / "tls/me.pem",
        config / "tls/me.key",
    )
    assert settings.api.tls.cert_file == config / "tls/api.pem"


@pytest.mark.parametrize(
    ("broker", "complaint"),
    [
        ({"url": "amqp://x@h/v", "tls": {"ca_file": "ca.pem"}}, "must be amqps://"),
        (
            {
                "url": "amqps://x@h/v",
                "relay_url": "amqp://r@h/v",
                "tls": {"ca_file": "ca.pem"},
            },
            "relay_url must be amqps://",
        ),
        (
            {"url": "amqps://x@h/v", "tls": {"ca_file": "ca.pem", "cert_file": "me.pem"}},
            "cert_file and key_file go together",
        ),
        (
            {
                "url": "amqps://x@h/v",
                "management_url": "http://h:15672",
                "tls": {"ca_file": "ca.pem"},
            },
            "management_url must be https://",
        ),
    ],
)
def test_tls_settings_that_cannot_work_are_refused_at_start(
    tmp_path: Path, broker: dict[str, object], complaint: str
) -> None:
    config = _config(tmp_path / "c", {"hosted": ["332"], "broker": broker})
    with pytest.raises(ConfigError, match=complaint):
        load_settings(config, env={})


def test_an_unreadable_ca_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"broker\.tls\.ca_file"):
        context(BrokerTls(ca_file=tmp_path / "missing.pem"))


def test_with_amqps_the_management_api_is_reached_over_https_on_its_tls_port() -> None:
    # Its requests carry the broker password: never over plain HTTP beside AMQPS.
    assert management_base("amqps://x:pw@broker.example:5671/v", None) == (
        "https://broker.example:15671"
    )
    assert management_base("amqp://x:pw@broker.example:5672/v", None) == (
        "http://broker.example:15672"
    )
    assert management_base("amqps://x@h/v", "") is None  # off: passive declares
