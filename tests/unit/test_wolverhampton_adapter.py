"""The wolverhampton-json adapter: EHM episode export <-> canonical assessments."""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import registry
from adapters.base import Adapter, Converted, Rejected, Result
from gateway.errors import MalformedInputError, RecordError
from gateway.model import (
    ActionStatus,
    CaseStatus,
    ConsentAction,
    ConsentScope,
    Element,
    EventType,
    Gender,
    Outcome,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "wolverhampton-336" / "ehm-export-2026-10-01.json"
REGION = ("330", "331", "332", "333", "334", "335", "336")


@pytest.fixture(scope="module")
def adapter() -> Adapter:
    return registry.create("wolverhampton-json", ROOT / "config" / "adapters", REGION)


def read(adapter: Adapter, data: bytes, source: str = "ehm.json") -> list[Result]:
    return list(adapter.read(io.BytesIO(data), source))


def sample() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SAMPLE.read_bytes())
    return loaded


def converted(adapter: Adapter) -> dict[str, Converted]:
    results = read(adapter, SAMPLE.read_bytes())
    assert all(isinstance(r, Converted) for r in results), results
    return {r.record: r for r in results if isinstance(r, Converted)}


def test_every_sample_episode_converts(adapter: Adapter) -> None:
    assert sorted(converted(adapter)) == ["EHM-77120", "EHM-77245"]


def test_identity_and_identifiers_reach_the_canonical_form(adapter: Adapter) -> None:
    a = converted(adapter)["EHM-77120"].assessment
    assert (a.child.given_name, a.child.family_name, a.child.preferred_name) == (
        "Kacper",
        "Nowak",
        "Kacper",
    )
    assert a.child.date_of_birth == date(2012, 7, 9)
    assert a.child.gender is Gender.MALE
    assert a.child.ethnicity == "WOTH"
    assert a.child.identifier("UPN") == "J336203317005"
    assert a.child.address is not None and a.child.address.la_code == "335"
    assert a.child.school is not None and a.child.school.la_code == "336"
    assert a.status is CaseStatus.OPEN
    assert a.started_on == date(2026, 6, 18)
    assert a.completed_on == date(2026, 7, 2)
    assert a.initiator is not None and a.initiator.email == "d.mistry@example.org"


def test_spaced_nhs_number_is_normalised(adapter: Adapter) -> None:
    child = converted(adapter)["EHM-77120"].assessment.child
    assert child.identifier("NHS") == "9990000042"


def test_carer_keeps_interpreter_and_language(adapter: Adapter) -> None:
    (carer,) = converted(adapter)["EHM-77120"].assessment.carers
    assert (carer.name, carer.relationship, carer.parental_responsibility) == (
        "Agnieszka Nowak",
        "Mother",
        True,
    )
    assert (carer.interpreter_needed, carer.language) == (True, "Polish")


def test_all_nineteen_dimensions_are_rated_with_notes(adapter: Adapter) -> None:
    a = converted(adapter)["EHM-77120"].assessment
    assert {e.element for e in a.elements} == set(Element)
    ratings = {e.element: e.rating for e in a.elements}
    assert ratings[Element.EDUCATION] == 4 and ratings[Element.IDENTITY] == 1
    notes = {e.element: e.notes for e in a.elements}
    assert notes[Element.EMPLOYMENT_AND_INCOME] == "Mother lost job in May."
    assert notes[Element.IDENTITY] is None
    assert a.outcome is Outcome.MULTI_AGENCY
    assert a.strengths is not None and a.strengths.startswith("Kacper is bright")


def test_smart_actions_keep_owner_la_due_and_status(adapter: Adapter) -> None:
    actions = converted(adapter)["EHM-77120"].assessment.actions
    assert [a.seq for a in actions] == [1, 2, 3]
    assert (actions[1].owner, actions[1].owner_la, actions[1].due, actions[1].status) == (
        "Walsall Family Hub",
        "335",
        date(2026, 10, 31),
        ActionStatus.NOT_STARTED,
    )
    assert actions[0].status is ActionStatus.IN_PROGRESS


def test_tac_meeting_attendees_keep_their_la(adapter: Adapter) -> None:
    (meeting,) = converted(adapter)["EHM-77120"].assessment.tac_meetings
    assert [(p.name, p.la_code) for p in meeting.attendees] == [
        ("Dev Mistry", "336"),
        ("Agnieszka Nowak", None),
        ("Lucy Grant", "335"),
    ]
    assert meeting.lead_professional_agreed is not None
    assert meeting.lead_professional_agreed.la_code == "335"
    assert isinstance(meeting.held_on, datetime) and meeting.held_on.utcoffset() is not None


def test_lead_professional_history_comes_from_allocation_events(adapter: Adapter) -> None:
    (period,) = converted(adapter)["EHM-77120"].assessment.lead_professionals
    assert period.practitioner.name == "Lucy Grant"
    assert period.practitioner.la_code == "335"
    assert period.practitioner.organisation == "Walsall Family Hub"
    assert period.from_date == date(2026, 7, 16)


def test_consent_gives_scopes_named_las_and_a_consent_change(adapter: Adapter) -> None:
    result = converted(adapter)["EHM-77120"]
    consent = result.assessment.consent
    assert consent is not None and consent.given and consent.given_by == "Agnieszka Nowak"
    assert consent.scopes == (
        ConsentScope.RECORD,
        ConsentScope.SHARE_WITHIN_LA,
        ConsentScope.SHARE_CROSS_BORDER,
        ConsentScope.INVITE_TO_TAC,
    )
    assert result.share_with == ("335",)
    assert result.consent is not None and result.consent.action is ConsentAction.GIVEN


def test_partial_withdrawal_removes_cross_border_sharing(adapter: Adapter) -> None:
    result = converted(adapter)["EHM-77245"]
    consent = result.assessment.consent
    assert consent is not None
    (withdrawal,) = consent.withdrawn
    assert (withdrawal.scope, withdrawal.by) == (ConsentScope.SHARE_CROSS_BORDER, "Sam Ward")
    assert ConsentScope.SHARE_CROSS_BORDER not in consent.active_scopes()
    assert ConsentScope.RECORD in consent.active_scopes()
    assert result.share_with == ("332",)


def test_case_events_carry_moves_and_withdrawals(adapter: Adapter) -> None:
    moved, withdrawn = converted(adapter)["EHM-77245"].assessment.events
    assert moved.type is EventType.CHILD_MOVED
    assert (moved.from_la, moved.to_la, moved.new_postcode) == ("336", "332", "DY3 1AB")
    assert withdrawn.type is EventType.CONSENT_WITHDRAWN
    assert withdrawn.scope is ConsentScope.SHARE_CROSS_BORDER
    assert withdrawn.at.utcoffset() is not None and withdrawn.at.hour == 15  # 16:02 BST


def test_source_system_comes_from_the_export(adapter: Adapter) -> None:
    for result in converted(adapter).values():
        assert result.assessment.source_system == "EarlyHelpModule 7.4"


def test_unknown_code_rejects_only_that_episode(adapter: Adapter) -> None:
    doc = sample()
    doc["episodes"][0]["child"]["sex"] = "Q"
    doc["episodes"][0]["consent"]["scopes"].append("SHARE_EVERYTHING")
    results = read(adapter, json.dumps(doc).encode(), "bad.json")
    rejected, ok = results
    assert isinstance(rejected, Rejected) and isinstance(ok, Converted)
    found = {(p.source, p.record, p.field, p.value) for p in rejected.problems}
    assert found == {
        ("bad.json", "EHM-77120", "child.sex", "Q"),
        ("bad.json", "EHM-77120", "consent.scopes[4]", "SHARE_EVERYTHING"),
    }


def test_bad_identifiers_and_ratings_are_field_problems(adapter: Adapter) -> None:
    doc = sample()
    episode = doc["episodes"][1]
    episode["child"]["identifiers"][0]["value"] = "999 000 0051"
    episode["assessment"]["dimensions"]["Health"]["rating"] = 7
    episode["child"]["address"]["postcode"] = "NOT A POSTCODE"
    (_, rejected) = read(adapter, json.dumps(doc).encode())
    assert isinstance(rejected, Rejected)
    assert {p.field for p in rejected.problems} == {
        "child.identifiers[0].value",
        "assessment.dimensions.Health.rating",
        "child.address.postcode",
    }


def test_consent_naming_an_authority_outside_the_region_is_a_problem(adapter: Adapter) -> None:
    doc = sample()
    doc["episodes"][1]["consent"]["sharingWith"] = ["860"]
    (_, rejected) = read(adapter, json.dumps(doc).encode())
    assert isinstance(rejected, Rejected)
    assert [(p.field, p.value) for p in rejected.problems] == [("consent.sharingWith", "860")]


def test_an_episode_of_the_wrong_shape_is_rejected_not_the_file(adapter: Adapter) -> None:
    doc = sample()
    doc["episodes"].insert(0, {"episodeId": "EHM-1", "child": [1, 2], "carers": "none"})
    doc["episodes"].insert(0, 42)
    results = read(adapter, json.dumps(doc).encode())
    assert [type(r).__name__ for r in results] == ["Rejected", "Rejected", "Converted", "Converted"]
    assert results[0].record == "episodes[0]"


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (SAMPLE.read_bytes()[:900], "line"),
        (b'{"episodes": [}', "line 1, column 15"),
        (SAMPLE.read_bytes().replace(b"Nowak", b"Now\xe1k"), "byte"),
        (b'{"system": "x"}', "no 'episodes'"),
        (b'{"episodes": []} trailing', "after the end"),
        (b"[1, 2]", "expected a JSON object"),
        (b"", "the file ends"),
        (b'{"episodes": ' + b"[" * 100_000, "line 1"),
    ],
    ids=["truncated", "invalid", "not-utf8", "no-episodes", "trailing", "array", "empty", "deep"],
)
def test_malformed_file_is_one_clear_error(adapter: Adapter, data: bytes, where: str) -> None:
    with pytest.raises(MalformedInputError) as caught:
        read(adapter, data, "broken.json")
    assert str(caught.value).startswith("broken.json: ")
    assert where in str(caught.value)


def _leaves(value: object, path: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def _normal(path: str, value: object) -> object:
    """Equal values written differently: empty text, spaced NHS numbers, local times."""
    if value in ("", None):
        return None
    if isinstance(value, str) and path.endswith(("startedOn", "completedOn")):
        return value[:10]
    if isinstance(value, str) and "identifiers" in path:
        return value.replace(" ", "")
    if isinstance(value, str) and len(value) > 10 and value[4:5] == "-" and "T" in value:
        return datetime.fromisoformat(value)
    return value


@pytest.mark.parametrize("index", [0, 1], ids=["EHM-77120", "EHM-77245"])
def test_local_to_canonical_to_local_keeps_every_mapped_field(adapter: Adapter, index: int) -> None:
    original = sample()["episodes"][index]
    result = read(adapter, SAMPLE.read_bytes())[index]
    assert isinstance(result, Converted)
    written = json.loads(adapter.write([result.assessment]))["episodes"][0]
    again = dict(_leaves(written))
    for path, value in _leaves(original):
        assert _normal(path, again.get(path)) == _normal(path, value), path


def test_canonical_to_local_to_canonical_is_identical(adapter: Adapter) -> None:
    first = [r.assessment for r in converted(adapter).values()]
    second = read(adapter, adapter.write(first))
    assert [r.assessment for r in second if isinstance(r, Converted)] == first


def test_writing_a_value_with_no_local_code_names_it(adapter: Adapter) -> None:
    a = converted(adapter)["EHM-77120"].assessment
    odd = replace(a, child=replace(a.child, religion="PASTAFARIAN"))
    with pytest.raises(RecordError) as caught:
        adapter.write([odd])
    (problem,) = caught.value.problems
    assert (problem.record, problem.field, problem.value) == (
        "EHM-77120",
        "child.religion",
        "PASTAFARIAN",
    )


class _EpisodeStream(io.RawIOBase):
    """An export of ``count`` copies of one episode, made up as it is read."""

    def __init__(self, episode: dict[str, Any], count: int) -> None:
        self.parts = self._parts(json.dumps(episode).encode(), count)
        self.pending = b""
        self.bytes_read = 0

    @staticmethod
    def _parts(episode: bytes, count: int) -> Iterator[bytes]:
        yield b'{"system": "EarlyHelpModule 7.4", "episodes": [\n'
        for number in range(count):
            yield (b",\n" if number else b"") + episode
        yield b"\n]}\n"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while len(self.pending) < len(buffer):
            part = next(self.parts, None)
            if part is None:
                break
            self.pending += part
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        self.bytes_read += size
        return size


def test_episodes_stream_before_the_file_is_read(adapter: Adapter) -> None:
    stream = _EpisodeStream(sample()["episodes"][1], 2_000)
    first = next(iter(adapter.read(io.BufferedReader(stream), "big.json")))
    assert isinstance(first, Converted)
    assert stream.bytes_read < 200_000  # the whole file is about 2.5 MB


def _peak_bytes(adapter: Adapter, count: int) -> int:
    stream = io.BufferedReader(_EpisodeStream(sample()["episodes"][1], count))
    tracemalloc.start()
    try:
        for result in adapter.read(stream, "big.json"):
            assert isinstance(result, Converted)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_number_of_episodes(adapter: Adapter) -> None:
    small, large = _peak_bytes(adapter, 200), _peak_bytes(adapter, 4_000)
    assert large < small * 2 + 300_000  # a leak would be ~5 kB per episode


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_read(adapter: Adapter, data: bytes) -> None:
    try:
        results = read(adapter, data)
    except MalformedInputError:
        return
    assert all(isinstance(r, Converted | Rejected) for r in results)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_value_anywhere_in_an_episode_gives_converted_or_rejected(
    adapter: Adapter, data: st.DataObject
) -> None:
    doc = sample()
    episode = doc["episodes"][data.draw(st.sampled_from([0, 1]))]
    paths = [path for path, _ in _leaves(episode)]
    target = data.draw(st.sampled_from(paths))
    node: Any = episode
    steps = target.replace("[", ".[").split(".")
    for step in steps[:-1]:
        node = node[int(step[1:-1])] if step.startswith("[") else node[step]
    last = steps[-1]
    replacement = data.draw(_JSON)
    if last.startswith("["):
        node[int(last[1:-1])] = replacement
    else:
        node[last] = replacement
    for result in read(adapter, json.dumps(doc).encode()):
        assert isinstance(result, Converted | Rejected)
