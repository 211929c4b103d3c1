"""What the rarer reads cost on a ledger with years of history: an erasure's look-up of
the child, the retention's plan, an administrator's look-up of a message by id.

``python -m bench.history_reads [--messages 50000] [--rounds 3]``: an SQLite ledger in
a temporary folder holding ``--messages`` messages of one authority recorded a year
ago (half sent, half received; five a child; each on a thread of its own, none past
its period), written straight to the table (``bench.scrape.fill``). Then, best of
``--rounds``, the CPU of this thread for:

- an erasure's look-up of one child: its threads and its messages
  (``retention.erasure._threads`` and ``_due``);
- the retention's plan of the authority (``retention.plan.plan``): every message
  older than the shortest period is judged, none is due, so the whole ledger is read;
- a message looked up by its id by an administrator (``Ledger.find`` naming the
  hosted authorities), and the same naming no authority, as it did before;
- the message search (``ledger.search``: the dashboard's search box, the API's
  ``GET /v1/messages``) by an id's first eight characters, by one case's reference
  typed in lower case (each case has five messages), by a beginning ten cases share,
  and by one every message shares (``DUD-0``).

Each should cost the same however long the history, but the plan, which reads it
all once.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, text

from bench.scrape import AUTHORITY, PEER, fill, print_best
from gateway.ledger import search
from gateway.ledger.store import Ledger
from gateway.ledger.tables import messages
from gateway.retention import erasure
from gateway.retention.plan import plan
from gateway.settings import Limits, RetentionSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cafgw-history-") as tmp:
        ledger = Ledger.open(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        now = datetime.now(UTC)
        fill(ledger, args.messages, 0.0, at=now - timedelta(days=365), children=args.messages // 5)
        with ledger.engine.connect() as conn:
            last = conn.execute(
                select(messages.c.message_id).order_by(messages.c.id.desc())
            ).first()
            conn.execute(text("UPDATE messages SET case_ref = printf('DUD-%06d', id / 5)"))
            conn.commit()
        assert last is not None
        message_id = last[0]
        case = f"dud-{args.messages // 10:06d}"
        rules, limits = RetentionSettings(), Limits()

        def child() -> int:
            with ledger.transaction() as conn:
                threads = erasure._threads(conn, AUTHORITY, "child-7")
                return len(erasure._due(conn, AUTHORITY, "child-7", threads, "erasure"))

        def planned() -> int:
            with ledger.transaction() as conn:
                return len(plan(conn, AUTHORITY, rules, limits, now).due)

        reads: dict[str, Callable[[], object]] = {
            "an erasure's look-up of one child": child,
            "the retention's plan (nothing due)": planned,
            "a message by id, the hosted authorities named": lambda: ledger.find(
                message_id=message_id, authorities=(AUTHORITY, PEER)
            ),
            "a message by id, no authority named": lambda: ledger.find(message_id=message_id),
            "search: an id's first 8 characters": lambda: search.search(
                ledger, search.Criteria((AUTHORITY,), message_id=message_id[:8])
            ),
            "search: a case reference, in lower case": lambda: search.search(
                ledger, search.Criteria((AUTHORITY,), case_ref=case)
            ),
            "search: a beginning ten cases share": lambda: search.search(
                ledger, search.Criteria((AUTHORITY,), case_ref=case[:-1])
            ),
            "search: a beginning every message shares": lambda: search.search(
                ledger, search.Criteria((AUTHORITY,), case_ref="DUD-0")
            ),
        }
        assert child() == 5 and planned() == 0
        assert len(search.search(ledger, search.Criteria((AUTHORITY,), case_ref=case))) == 5
        print(f"{args.messages:,} messages a year old, five a child")
        print_best(reads, args.rounds, width=9)
        ledger.engine.dispose()


if __name__ == "__main__":
    main()
