"""A client generated from /openapi.json (openapi-python-client, pinned in
requirements-openapi.lock) sends a local export, pulls the inbox and acknowledges, against
a real gateway on the real broker: the spec declares what a client needs to do that."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from tests.integration.gateways import make_settings, running
from tests.integration.test_dashboard_browser import serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / ".venv" / "openapi-client" / "bin" / "openapi-python-client"
DUDLEY = ROOT / "tests" / "data" / "dudley-332" / "caf-register-2026-09.csv"


def _generate(spec: dict[str, object], where: Path) -> str:
    """Generate the client package into ``where``; its import name."""
    assert GENERATOR.exists(), f"{GENERATOR} is missing: run make (it builds the tool env)"
    (where / "openapi.json").write_text(json.dumps(spec), encoding="utf-8")
    (where / "config.yaml").write_text("post_hooks: []\n", encoding="utf-8")
    done = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            "openapi.json",
            "--config",
            "config.yaml",
            "--meta",
            "none",
            "--overwrite",
        ],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Every operation made it into the client: nothing of the spec was skipped.
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    return "cafgw_client"


def test_a_client_generated_from_the_spec_sends_an_export_pulls_and_acknowledges(
    tmp_path: Path, vhost: str
) -> None:
    settings = make_settings(tmp_path, ("332", "336"), f"sqlite:///{tmp_path / 'l.db'}", vhost)
    keys = ApiKeys(settings.api_keys_file)
    key_332, key_336 = keys.issue("332"), keys.issue("336")
    with running(settings) as gw:
        package = _generate(create_app(gw, keys).openapi(), tmp_path)
        sys.path.insert(0, str(tmp_path))
        try:
            client_mod = importlib.import_module(f"{package}.client")
            submit = importlib.import_module(f"{package}.api.messages.submit_v1_messages_post")
            inbox = importlib.import_module(f"{package}.api.inbox.inbox_v1_inbox_get")
            ack = importlib.import_module(
                f"{package}.api.inbox.acknowledge_v1_inbox_message_id_ack_post"
            )
            types = importlib.import_module(f"{package}.types")
            with serving(gw, keys) as base:
                dudley = client_mod.AuthenticatedClient(base_url=base, token=key_332)
                with DUDLEY.open("rb") as stream:
                    sent = submit.sync_detailed(
                        client=dudley,
                        body=types.File(payload=stream, file_name=DUDLEY.name),
                        adapter="dudley-csv",
                        source=DUDLEY.name,
                    )
                assert sent.status_code == 202, sent.content
                report = sent.parsed
                assert report.queued >= 1 and report.rejected == 1
                # Errors name the file, not "upload".
                bad = next(r for r in report.records if r.status == "REJECTED")
                assert bad.reasons[0].startswith(f"{DUDLEY.name}:")

                wolverhampton = client_mod.AuthenticatedClient(base_url=base, token=key_336)
                deadline = time.monotonic() + 30
                items: list[object] = []
                while time.monotonic() < deadline and not items:
                    items = inbox.sync(client=wolverhampton) or []
                    time.sleep(0.2)
                assert items, "nothing arrived in 336's inbox"
                first = items[0]
                answer = ack.sync_detailed(first.message_id, client=wolverhampton)
                assert answer.status_code == 200 and answer.parsed.status == "ACKNOWLEDGED"
                left = {i.message_id for i in inbox.sync(client=wolverhampton) or []}
                assert first.message_id not in left
        finally:
            sys.path.remove(str(tmp_path))
            for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
                del sys.modules[name]
