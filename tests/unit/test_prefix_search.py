"""A search by an id's or a case reference's first characters (``ledger.prefix``): the
rows that begin so and no others, on both ledgers, whatever the case of the letters
typed, with ``%`` and ``_`` taken as they are; read by index, not by walking every
message of the authority (issue 14)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import text
from support.databases import on_both
from support.outbound import queued
from support.sql import captured, plans

from gateway.ledger import search
from gateway.ledger.prefix import after, fold_ascii
from gateway.ledger.status import Direction
from gateway.ledger.store import Ledger

CASE_REFS = (
    "DUD-2026-00417",
    "DUD-2026-00418",
    "DUD-2027-00001",
    "dud-2026-lower",
    "Dud-2026-Mixed",
    "DUD-2026%00419",
    "DUD_2026_00420",
    "DUDX2026",
    "SAN-2026-00417",
    "DUD",
)
# Ids beside the first two: one beginning the same up to a hyphen's place, one
# before and one after them, one stored in upper case as a quarantined message's may be.
IDS = (
    "0f8fad5b-d9cb-469f-a165-70867728950e",
    "0f8fad5b-d9cb-469f-a165-70867728950f",
    "0f8fad5bd-9cb-469f-a165-70867728950e",
    "0f8fad5c-0000-469f-a165-70867728950e",
    "0f8fad5a-ffff-469f-a165-70867728950e",
    "0F8FAD5B-D9CB-469F-A165-70867728950A",
    "QUARANTINED-AS-IT-CAME",
)


# And PostgreSQL in a linguistic collation (ICU's), where a range of text is not a
# prefix: "DUD_" and "DUD-2026%" sort among other letters and punctuation there.
on_every_collation = pytest.mark.parametrize(
    "ledger_url",
    [
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.integration),
        pytest.param("postgresql-en-GB", marks=pytest.mark.integration),
    ],
    indirect=True,
)


def _fill(ledger: Ledger) -> None:
    rows = [replace(queued(), message_id=message_id, case_ref=None) for message_id in IDS] + [
        replace(queued(), case_ref=case_ref) for case_ref in CASE_REFS
    ]
    rows.append(replace(queued(authority="336", sender="336"), case_ref="DUD-2026-00417"))
    inbound = replace(
        queued(sender="336"), direction=Direction.INBOUND, message_id=str(uuid.uuid4())
    )
    rows.append(replace(inbound, case_ref="DUD-2026-00416"))
    ledger.record(rows)


def _ids(ledger: Ledger, **criteria: str) -> set[str]:
    found = search.search(ledger, search.Criteria(authorities=("332",), **criteria))
    return {r.message_id for r in found}


def _case_refs(ledger: Ledger, case_ref: str) -> set[str | None]:
    found = search.search(ledger, search.Criteria(authorities=("332",), case_ref=case_ref))
    return {r.case_ref for r in found}


@on_every_collation
@pytest.mark.parametrize("few_max", [search.FEW_MAX, 1], ids=["by-its-index", "newest-first"])
def test_a_case_reference_is_found_by_its_beginning_in_any_case_and_nothing_else(
    ledger: Ledger, few_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whether the case's index is read (few have it) or the newest messages walked (many
    # do), the same rows: both directions; letters in any case; % and _ as themselves.
    monkeypatch.setattr(search, "FEW_MAX", few_max)
    _fill(ledger)
    assert _case_refs(ledger, "DUD-2026") == {
        "DUD-2026-00417",
        "DUD-2026-00418",
        "dud-2026-lower",
        "Dud-2026-Mixed",
        "DUD-2026%00419",
        "DUD-2026-00416",
    }
    assert _case_refs(ledger, "dud-2026-0041") == {
        "DUD-2026-00417",
        "DUD-2026-00418",
        "DUD-2026-00416",
    }
    assert _case_refs(ledger, "DUD-2026%") == {"DUD-2026%00419"}
    assert _case_refs(ledger, "DUD_") == {"DUD_2026_00420"}
    assert _case_refs(ledger, " dud-2026-mixed ") == {"Dud-2026-Mixed"}
    # Shorter than MIN_PREFIX: the whole reference, in any case, and no beginning.
    assert _case_refs(ledger, "dud") == {"DUD"}
    assert _case_refs(ledger, "DU") == set()


@on_every_collation
def test_a_message_id_is_found_by_its_beginning_as_typed_or_in_either_case(
    ledger: Ledger,
) -> None:
    _fill(ledger)
    upper = IDS[5]
    assert _ids(ledger, message_id="0f8fad5b-") == {*IDS[:2], upper}
    assert _ids(ledger, message_id="0F8FAD5B-D9CB") == {*IDS[:2], upper}
    assert _ids(ledger, message_id="0f8fad5b") == {*IDS[:3], upper}
    assert _ids(ledger, message_id=IDS[0]) == {IDS[0]}
    assert _ids(ledger, message_id=upper.lower()) == {upper}
    # A quarantined message's id, kept as it came, in any of the three spellings.
    assert _ids(ledger, message_id="quarantined-as") == {"QUARANTINED-AS-IT-CAME"}
    assert _ids(ledger, message_id="0f8") == set()  # shorter than MIN_PREFIX: whole ids only


@on_both
def test_a_search_box_left_empty_or_blank_is_no_filter_and_counts_nothing(
    ledger: Ledger,
) -> None:
    # ``GET /v1/messages?case_ref=`` passes an empty string: before the fix of a review,
    # it was counted, found "few", and every message of the authority read and sorted.
    _fill(ledger)
    everything = _ids(ledger)
    for blank in ("", "   "):
        with captured(ledger.engine) as statements:
            assert _ids(ledger, case_ref=blank, message_id=blank) == everything
        assert not [sql for sql, _ in statements if "count(" in sql.lower()], statements


@on_both
def test_a_search_by_a_beginning_reads_the_matching_rows_by_index(ledger: Ledger) -> None:
    # Before: LIKE, which no index served; SQLite walked every message of the authority
    # newest first, PostgreSQL read them all, whenever fewer than a page matched.
    _fill(ledger)
    if ledger.engine.dialect.name == "postgresql":
        # PostgreSQL plans by its statistics: on a few rows any index does.
        ledger.record([replace(queued(), case_ref=f"WOL-{n:05d}") for n in range(3000)])
        with ledger.engine.begin() as conn:
            conn.execute(text("ANALYZE messages"))
    by_id = (
        "ix_messages_message_id"
        if ledger.engine.dialect.name == "sqlite"
        else "ix_messages_id_bytes"
    )
    since = datetime(2000, 1, 1, tzinfo=UTC)  # SQLite took the dates' range of every message
    both = ("332", "336")  # the count, an authority at a time: over both, SQLite took
    searches = [  # ix_messages_case, every entry of them
        ("ix_messages_case_folded", search.Criteria(("332",), case_ref="dud-2026-00")),
        ("ix_messages_case_folded", search.Criteria(both, case_ref="dud-2026-00")),
        ("ix_messages_case_folded", search.Criteria(both, case_ref="DUD", limit=500)),
        (
            "ix_messages_case_folded",
            search.Criteria(("332",), case_ref="DUD-20", created_from=since),
        ),
        (by_id, search.Criteria(("332",), message_id="0f8fad5b-d9")),
        (by_id, search.Criteria(both, message_id="0F8FAD5B-d9", limit=500)),
        (by_id, search.Criteria(("332",), message_id="0f8fad5b-d9", created_from=since)),
        # Beside the direction, SQLite searched every message of it (a second review).
        (by_id, search.Criteria(("332",), message_id="0f8fad5b-d9", direction=Direction.INBOUND)),
        # A whole id, too short to be a beginning: the directions named for its index.
        ("ix_messages_message_id", search.Criteria(both, message_id="0f8")),
    ]
    for index, criteria in searches:
        with captured(ledger.engine) as statements:
            search.search(ledger, criteria)
        reads = [sql for sql, _ in statements if "ORDER BY" in sql]
        assert reads, statements
        if ledger.engine.dialect.name == "sqlite":
            for sql, plan in plans(ledger.engine, statements).items():
                searched = [
                    line
                    for line in plan.splitlines()
                    if "messages" in line and "USING INTEGER PRIMARY KEY (rowid=?)" not in line
                ]  # an id's messages are read by key, once its index found them
                assert searched, plan
                assert all(
                    f"INDEX {index} (direction=? AND authority=? AND " in line for line in searched
                ), (sql, plan)
        else:
            plan = _postgresql_plan(ledger, statements, reads[0])
            lines = plan.splitlines()
            searched = [
                after
                for line, after in pairwise(lines)
                if f" {index} " in line and "Index Cond:" in after
            ]  # PostgreSQL may start elsewhere where its statistics say few rows are
            assert any("upper((case_ref)" in s or "(message_id)" in s for s in searched), plan


def _postgresql_plan(ledger: Ledger, statements: list[tuple[str, object]], sql: str) -> str:
    params = next(p for s, p in statements if s == sql)
    with ledger.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cur:
            cur.execute("EXPLAIN " + sql, params)
            return "\n".join(str(r[0]) for r in cur.fetchall())


def test_the_end_of_a_beginnings_range_is_the_next_text_in_code_point_order() -> None:
    assert after("abc") == "abd"
    assert after("DUD-") == "DUD."
    assert after("a\U0010ffff") == "b"
    assert after("\U0010ffff\U0010ffff") is None
    assert after("x\ud7ff") == "x\ue000"  # past the surrogates, which no UTF-8 holds
    assert fold_ascii("dud-2026-é") == "DUD-2026-é"


def test_a_case_beginning_most_messages_share_walks_the_newest_until_a_page_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "DUD-2026" may be every case of the year: reading all of them from the case's index
    # and sorting them would cost what the page walk without it costs at most.
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        _fill(ledger)
        monkeypatch.setattr(search, "FEW_MAX", 4)
        for case_ref, index in (
            ("DUD-2026", "ix_messages_made (authority=?)"),
            ("DUD-2027", "ix_messages_case_folded"),
        ):
            with captured(ledger.engine) as statements:
                search.search(ledger, search.Criteria(("332",), case_ref=case_ref))
            read = next(sql for sql, _ in statements if "ORDER BY" in sql)
            assert f"USING INDEX {index}" in plans(ledger.engine, statements)[read]
    finally:
        ledger.engine.dispose()
