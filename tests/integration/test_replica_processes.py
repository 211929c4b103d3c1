"""Replicas as real processes: two sending and two receiving ``cafgw run`` processes,
each pair on one PostgreSQL ledger, one receiver SIGKILLed mid-stream.

Counted at the ends: the receiving local system (a webhook in this test)
takes every message, and only the killed replica's in-flight handovers may
come twice (with the same idempotency key, as after any crash); the
receiving ledger notes no DUPLICATE (a message published twice, by two
sender replicas or a re-send, would be noted so); every message is recorded
once and receipted once, and the sender ledger shows each DELIVERED after
one publish.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from local_systems import WebhookReceiver, secret_file
from sqlalchemy import select

from gateway.envelope.keys import ensure_identity
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import history, messages
from gateway.settings import load_settings
from tests.conftest import _pg_database
from tests.integration.procs import (
    ALL,
    ROOT,
    GatewayProcess,
    feed,
    feeder,
    free_port,
    signed_batch,
    wait_until,
    write_config,
)
from tests.integration.test_replicas import receipt_items

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

COUNT = 300
CONFIG = ROOT / "config" / "gateway.yaml"
SENDER, RECIPIENT = "332", "336"


@pytest.fixture
def second_pg_url() -> Iterator[str]:
    yield from _pg_database()


def test_two_sender_and_two_receiver_processes_one_receiver_killed_each_message_once(
    tmp_path: Path, vhost: str, pg_url: str, second_pg_url: str
) -> None:
    keys = tmp_path / "keys"
    probe = load_settings(ROOT / "config", env={}, overrides={"keys_dir": str(keys)})
    for code in ALL:
        ensure_identity(code, probe.directory.get(code).name, keys)
    path, secret = secret_file(tmp_path / "secrets")
    with WebhookReceiver(secret) as local:
        webhook = {RECIPIENT: {"kind": "webhook", "url": local.url, "hmac_secret_file": str(path)}}
        # 2 s webhook timeouts: handover claims are leased for 15 s (the minimum), so
        # the killed replica's claims lapse within the test's time.
        delivery = {**yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["delivery"]}
        delivery["local_timeout_s"] = 2
        procs = []
        for name, code, url in (
            ("receiver-a", RECIPIENT, second_pg_url),
            ("receiver-b", RECIPIENT, second_pg_url),
            ("sender-a", SENDER, pg_url),
            ("sender-b", SENDER, pg_url),
        ):
            port = free_port()
            folder = write_config(
                tmp_path / name,
                hosted=(code,),
                amqp_url=vhost,
                ledger_url=url,
                keys_dir=keys,
                port=port,
                connectors=webhook,
                gateway={"delivery": delivery},
            )
            procs.append(GatewayProcess(name, folder, port, tmp_path / f"{name}.log"))
        try:
            starting = [threading.Thread(target=proc.start) for proc in procs]
            for thread in starting:
                thread.start()
            for thread in starting:
                thread.join(90)
            assert all(proc.proc is not None and proc.proc.poll() is None for proc in procs)
            source = feeder(procs[2].settings)
            sent = signed_batch(source, SENDER, RECIPIENT, COUNT)
            feed(source, sent)
            ids = {m.message_id for m in sent}

            wait_until(lambda: len(local.snapshot()[1]) >= COUNT // 4, 60, "a quarter handed over")
            procs[1].kill()  # receiver-b, mid-stream: no shutdown code runs
            killed_at = time.monotonic()
            # The killed replica's claims lapse (15 s) and receiver-a takes them over.
            wait_until(lambda: set(local.snapshot()[1]) >= ids, 60, "every message handed over")
            receiving = Ledger.open(second_pg_url)
            sending = Ledger.open(pg_url)
            wait_until(
                lambda: sending.counts().get((SENDER, "OUTBOUND", "DELIVERED")) == COUNT,
                60,
                "every message receipted",
            )
            recovered_s = time.monotonic() - killed_at
        finally:
            for proc in procs:  # SIGKILL: a graceful stop is not what is tested here
                if proc.proc is not None and proc.proc.poll() is None:
                    proc.kill()
        calls, taken = local.snapshot()

    repeated = {m: n for m, n in taken.items() if n > 1}
    # Only what the killed replica had claimed could come again (one turn's claim at most).
    assert len(repeated) <= 100, repeated
    assert set(taken) == ids
    assert {c.key for c in calls if c.key in repeated} == set(repeated)
    with receiving.transaction() as conn:
        duplicates = conn.execute(
            select(messages.c.message_id)
            .join(history, history.c.message_pk == messages.c.id)
            .where(
                messages.c.direction == Direction.INBOUND.value,
                history.c.status == Status.DUPLICATE.value,
            )
        ).all()
    assert duplicates == []  # nothing was published twice
    rows = receiving.find(
        authority=RECIPIENT, direction=Direction.INBOUND, limit=10_000, with_history=False
    )
    recorded = Counter(r.message_id for r in rows if r.message_type != "Receipt")
    assert recorded == Counter(dict.fromkeys(ids, 1))
    assert receipt_items(receiving) == Counter(dict.fromkeys(ids, 1))
    outbound = sending.find(
        authority=SENDER, direction=Direction.OUTBOUND, limit=10_000, with_history=False
    )
    assert {r.attempts for r in outbound if r.message_id in ids} == {1}
    print(f"recovered {recovered_s:.1f} s after the kill; repeated handovers: {len(repeated)}")
    receiving.engine.dispose()
    sending.engine.dispose()
