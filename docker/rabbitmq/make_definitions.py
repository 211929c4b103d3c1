"""Write docker/rabbitmq/definitions.json: the demo broker's accounts and topology.

Run ``.venv/bin/python docker/rabbitmq/make_definitions.py`` after changing
the grants (gateway/transport/accounts.py), the topology or a demo gateway's
retry settings. Everything comes from the code ``cafgw broker setup`` runs:
one account per authority (``cafgw-caf-<tag>-<code>``), a relay per
authority for its own lanes (``...-relay-<code>``), the regional reader, and
the exchanges, queues and bindings of the three gateways' lanes, declared
here because the gateways' accounts may not declare them
(``broker.declare_topology: false``). Passwords are the demo's (``demo-<code>``,
``demo-relay-<code>``, ``demo-regional``, ``demo-ops``): change them before
anything real. Salts are derived from the user names, so the file is the same
on every run (``tests/unit/test_docker_files.py`` checks it is current).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from gateway.settings import Settings, load_settings  # noqa: E402
from gateway.transport.accounts import relay_of  # noqa: E402
from gateway.transport.definitions import Accounts, definitions  # noqa: E402
from gateway.transport.retry import RetryPolicy  # noqa: E402
from gateway.transport.topology import REGIONAL, plan, topology_for  # noqa: E402

CODES = ("332", "333", "336")
VHOST = "caf"


def gateway_settings(code: str) -> Settings:
    return load_settings(ROOT / "docker" / "config" / code, env={})


def demo_password(code: str) -> str:
    return f"demo-{code}"


def demo_definitions() -> dict[str, Any]:
    """The demo broker's definitions, as ``make_definitions.py`` writes them."""
    settings = {code: gateway_settings(code) for code in CODES}
    (regional_host,) = [c for c, s in settings.items() if s.disputes.consume_regional]
    policies = {code: RetryPolicy.from_delivery(s.delivery) for code, s in settings.items()}
    policies[REGIONAL] = policies[regional_host]
    topology = topology_for(settings[regional_host].broker)
    accounts = Accounts(
        vhost=VHOST,
        codes=[*CODES, REGIONAL, *(relay_of(code) for code in CODES)],
        password=demo_password,
        salt=lambda name: hashlib.sha256(f"cafgw demo {name}".encode()).digest()[:4],
        regional_host=regional_host,
        administrators={"cafgw-ops": "demo-ops"},
    )
    return definitions(accounts, plan(topology, CODES, policies.__getitem__))


def main() -> None:
    text = json.dumps(demo_definitions(), indent=2) + "\n"
    (HERE / "definitions.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
