"""What one message's codec and XMLDSig steps cost, offline, best of several rounds.

``python -m bench.codec [--messages 500] [--rounds 7]``: two gateways in this
process (332 signs, 336 checks) on the in-memory transport, no broker and no
ledger work. Each step runs over ``--messages`` signed copies of the example
Assessment (``schemas/examples/assessment.xml``, 5 KB signed), ``--rounds``
times; the table gives the fastest round's wall time per message, which a busy
or noisy machine moves far less than a mean (issue 14: on the seventeenth
session's machine, the same tree's flat-out CPU per message moved by 15 %
between runs a minute apart). Measures whichever tree it runs from; the JSON
goes to ``bench/results/codec-<time>.json``.

Sending: ``lxml tree + content digest`` is the element built with lxml one
element at a time and its body copied out and canonicalised, as ``Outbox.sign``
did before 2026-12-06; ``written envelope + content digest`` is what it does
now (``codec.written_envelope``); ``Outbox.sign`` is the whole of signing one
message. Receiving: the steps of ``receiving.checks.check`` one by one, then
``check`` itself (with the routing and publisher checks).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "tests") not in sys.path:
    sys.path.append(str(ROOT / "tests"))  # after the tree measured: only its helpers

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench import offline  # noqa: E402
from gateway.envelope import codec  # noqa: E402
from gateway.envelope.codec import element_to_envelope, envelope_to_element  # noqa: E402
from gateway.model import Envelope  # noqa: E402
from gateway.outbox import content_digest, digest, written_content_digest  # noqa: E402
from gateway.services.receiving import checks  # noqa: E402
from gateway.transport.base import Delivery  # noqa: E402
from gateway.transport.provenance import publishers_for  # noqa: E402

SENDER, RECIPIENT = offline.SENDER, offline.RECIPIENT
RESULTS = ROOT / "bench" / "results"


def best_ms(step: Callable[[Any], object], inputs: Sequence[Any], rounds: int) -> float:
    """The fastest of ``rounds`` runs of ``step`` over ``inputs``, ms per input."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for item in inputs:
            step(item)
        best = min(best, time.perf_counter() - started)
    return best / len(inputs) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cafgw-codec-") as tmp:
        pair = offline.pair(Path(tmp))
        sender, receiver = pair.sender, pair.receiver
        envelopes = pair.fresh(args.messages)
        signed = [sender.outbox.sign(env) for env in envelopes]
        account = sorted(publishers_for(receiver.settings.broker, SENDER))[0]
        queue, key = f"caf.inbox.{RECIPIENT}", f"{RECIPIENT}.Assessment.{SENDER}"
        deliveries = [
            Delivery(queue, key, m.body or b"", m.message_id, {}, 0, n, account)
            for n, m in enumerate(signed)
        ]
        source = checks.source_of(receiver, deliveries[0])
        assert isinstance(checks.check(receiver, source, deliveries[0]), checks.Passed)
        verified = [receiver.verifier.verify(d.body) for d in deliveries]
        decoded = [element_to_envelope(v.root) for v in verified]

        written_envelope = _written()

        def lxml_tree(env: Envelope) -> str:
            return written_content_digest(envelope_to_element(env))

        def written(env: Envelope) -> str:
            assert written_envelope is not None
            _root, body = written_envelope(env)
            return digest(body)

        steps: list[tuple[str, str, Callable[[Any], object], Sequence[Any]]] = [
            ("sending", "lxml tree + content digest", lxml_tree, envelopes),
        ]
        if written_envelope is not None:
            steps.append(("sending", "written envelope + content digest", written, envelopes))
        steps += [
            ("sending", "Outbox.sign (all of signing)", sender.outbox.sign, envelopes),
            (
                "receiving",
                "verify (parse included)",
                receiver.verifier.verify,
                [d.body for d in deliveries],
            ),
            ("receiving", "schema", lambda v: receiver.schema.validate(v.root, "m"), verified),
            ("receiving", "decode", lambda v: element_to_envelope(v.root), verified),
            ("receiving", "content digest", lambda e: content_digest(e.body), decoded),
            (
                "receiving",
                "check (all of the checks)",
                lambda d: checks.check(receiver, source, d),
                deliveries,
            ),
        ]
        rows = [
            {"side": side, "step": name, "ms": round(best_ms(step, inputs, args.rounds), 4)}
            for side, name, step, inputs in steps
        ]
    table = Table(title=f"codec and XMLDSig, ms per message (best of {args.rounds})")
    for column in ("side", "step", "ms"):
        table.add_column(column, justify="right" if column == "ms" else "left")
    for row in rows:
        table.add_row(row["side"], row["step"], f"{row['ms']:.3f}")
    Console().print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"codec-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(), "rows": rows}, indent=2))
    print(f"written {out}")


def _written() -> Callable[[Envelope], tuple[Any, bytes]] | None:
    """``codec.written_envelope`` where the tree measured has it (since 2026-12-06)."""
    return getattr(codec, "written_envelope", None)


if __name__ == "__main__":
    main()
