"""Creating and deleting RabbitMQ vhosts for test isolation.

Through the management HTTP API when the plugin is enabled (`make test`
enables it: about 0.1 s a call), else through ``rabbitmqctl`` (about 1 s a
call, each booting an Erlang VM).
"""

from __future__ import annotations

import functools
import subprocess
from urllib.parse import quote

import httpx

from gateway.transport.accounts import vhost_tag

API = "http://127.0.0.1:15672/api"
AUTH = ("guest", "guest")


@functools.cache
def _management_api() -> bool:
    try:
        return httpx.get(f"{API}/overview", auth=AUTH, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def create_vhost(name: str, user: str = "guest") -> None:
    """Create ``name`` and give ``user`` every permission on it."""
    if _management_api():
        vhost = quote(name, safe="")
        httpx.put(f"{API}/vhosts/{vhost}", auth=AUTH, timeout=30.0).raise_for_status()
        httpx.put(
            f"{API}/permissions/{vhost}/{quote(user, safe='')}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
            auth=AUTH,
            timeout=30.0,
        ).raise_for_status()
        return
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, user, ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )


def delete_vhost(name: str) -> None:
    """Delete ``name`` with everything in it (no error if it is gone)."""
    if _management_api():
        httpx.delete(f"{API}/vhosts/{quote(name, safe='')}", auth=AUTH, timeout=30.0)
        return
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False, capture_output=True)


def delete_users_of(vhost: str, user_prefix: str = "cafgw-") -> list[str]:
    """Delete the broker users ``cafgw broker setup`` names for ``vhost`` (users are
    global: deleting the vhost leaves them); the names deleted."""
    prefix = f"{user_prefix}{vhost_tag(vhost)}-"
    if _management_api():
        found = httpx.get(f"{API}/users", auth=AUTH, timeout=30.0)
        found.raise_for_status()
        names = [u["name"] for u in found.json() if u["name"].startswith(prefix)]
        if names:
            httpx.post(
                f"{API}/users/bulk-delete", json={"users": names}, auth=AUTH, timeout=30.0
            ).raise_for_status()
        return names
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_users"], check=True, capture_output=True, text=True
    ).stdout
    names = [ln.split()[0] for ln in listed.splitlines() if ln.startswith(prefix)]
    for name in names:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", name], check=False, capture_output=True)
    return names
