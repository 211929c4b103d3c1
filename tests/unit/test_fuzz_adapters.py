"""Fuzzing each adapter's reader with mutated sample exports: no crash, no hang.

A reader may reject a record (a ``Rejected`` result naming row and field) or
the whole file (a cafgw error); it may not raise anything else.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters import registry
from gateway.errors import CafgwError
from gateway.settings import load_settings
from tests.unit.fuzz_support import FUZZ_SECONDS, fuzz_settings, mutated, run_for

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
SAMPLES = {
    "dudley-csv": DATA / "dudley-332" / "caf-register-2026-09.csv",
    "sandwell-xml": DATA / "sandwell-333" / "fwi-forms-20261005.xml",
    "wolverhampton-json": DATA / "wolverhampton-336" / "ehm-export-2026-10-01.json",
}

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(int(FUZZ_SECONDS * 4) + 60)]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_an_adapter_reader_survives_mutated_exports(name: str) -> None:
    settings = load_settings(ROOT / "config", env={})
    adapter = registry.create(name, settings.adapters_dir, settings.directory.authorities)
    seed = SAMPLES[name].read_bytes()

    @given(data=st.one_of(mutated(seed), st.binary(max_size=512)))
    @fuzz_settings
    def target(data: bytes) -> None:
        try:
            for _result in adapter.read(io.BytesIO(data), "fuzzed"):
                pass
        except CafgwError:
            pass

    run_for(target)
