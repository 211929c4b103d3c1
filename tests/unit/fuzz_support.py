"""Time-bounded fuzzing with hypothesis: ``CAFGW_FUZZ_SECONDS`` per target.

``make test`` runs every fuzz target for a few seconds; ``make fuzz`` sets
``CAFGW_FUZZ_SECONDS`` (default 300) to run them longer. A target is a
hypothesis test; it is run in rounds of fresh random examples until its
time is spent. A hang is caught by the per-example deadline and the test's
timeout; a crash is any exception the target does not expect.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ_SECONDS = float(os.environ.get("CAFGW_FUZZ_SECONDS", "3"))
ROUND_EXAMPLES = 50

fuzz_settings = settings(
    max_examples=ROUND_EXAMPLES,
    deadline=timedelta(seconds=5),
    database=None,
    derandomize=False,
    suppress_health_check=list(HealthCheck),
)

TOKENS = [
    b"<!DOCTYPE x>",
    b'<!ENTITY a "b">',
    b"&a;",
    b"&#0;",
    b"<!--",
    b"-->",
    b"<![CDATA[",
    b"]]>",
    b"<?pi x?>",
    b"</Envelope>",
    b"<Envelope xmlns='urn:caf-exchange:1'>",
    b"<ds:Signature xmlns:ds='http://www.w3.org/2000/09/xmldsig#'>",
    b"\x00",
    b"\xff\xfe",
    b'"',
    b",",
    b"\r\n",
    b"{",
    b"}",
    b"[",
    b"null",
    b"31/04/2014",
    b"9" * 40,
]


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few byte flips, token insertions, deletions and a truncation."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.sampled_from(TOKENS))
        else:
            del data[at : at + draw(st.integers(1, 64))]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def run_for(target: Callable[[], None], seconds: float = FUZZ_SECONDS) -> int:
    """Run the hypothesis test ``target`` in rounds until ``seconds`` pass; the rounds run."""
    deadline = time.monotonic() + seconds
    rounds = 0
    while rounds == 0 or time.monotonic() < deadline:
        target()
        rounds += 1
    return rounds
