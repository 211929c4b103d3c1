"""A gateway hosting Wolverhampton (336) as the attack corpus expects it.

In-memory transport, a temporary SQLite ledger, the corpus clock and the
corpus trust store (see tests/data/attacks/make_corpus.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from gateway.context import Gateway, build
from gateway.envelope.trust import TrustStore
from gateway.settings import load_settings
from gateway.transport.memory import MemoryTransport
from tests.data.attacks import make_corpus

ROOT = Path(__file__).resolve().parents[2]


def write_identity(keys_dir: Path, code: str, label: str) -> None:
    """Write the corpus key and certificate of ``label`` as ``code``'s identity."""
    folder = keys_dir / code
    folder.mkdir(parents=True, exist_ok=True)
    key = make_corpus.corpus_key(label)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / "cert.pem").write_bytes(
        make_corpus.corpus_cert(label).public_bytes(serialization.Encoding.PEM)
    )


def corpus_gateway(tmp_path: Path) -> Gateway:
    """Wolverhampton's gateway; the caller disposes ``gw.ledger.engine``."""
    keys_dir = tmp_path / "keys"
    write_identity(keys_dir, "336", "336")  # 336 may decrypt what is encrypted to it
    settings = load_settings(
        ROOT / "config",
        env={},
        overrides={
            "hosted": ["336"],
            "keys_dir": str(keys_dir),
            "database": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
            "api_keys_file": str(tmp_path / "api-keys.json"),
            "limits": {"max_message_bytes": 100_000, "max_xml_depth": 64},
        },
    )
    trust = TrustStore.from_mapping(
        {
            code: [make_corpus.corpus_cert(label) for label in labels]
            for code, labels in make_corpus.PINNED.items()
        }
    )

    def clock() -> object:
        return make_corpus.NOW

    return build(settings, MemoryTransport(), clock=clock, trust=trust)  # type: ignore[arg-type]


@contextmanager
def opened_corpus_gateway(tmp_path: Path) -> Iterator[Gateway]:
    """``corpus_gateway``, its ledger's connections closed afterwards."""
    gw = corpus_gateway(tmp_path)
    try:
        yield gw
    finally:
        gw.ledger.engine.dispose()
