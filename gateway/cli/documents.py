"""Commands on documents: convert, validate, sign, verify (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import typer
from lxml import etree

from adapters.base import Converted
from gateway.cases.identity import correlation_id
from gateway.cli.common import ConfigOption, console, err_console, friendly, settings_from
from gateway.context import load_adapters
from gateway.envelope import xmlsafe
from gateway.envelope.codec import envelope_to_element
from gateway.envelope.schema import SchemaValidator
from gateway.envelope.signing import Signer, Verifier
from gateway.envelope.trust import TrustStore
from gateway.errors import CafgwError, SchemaError
from gateway.ledger.store import utc_now
from gateway.model import NAMESPACE, LegalBasis
from gateway.outbox import new_envelope


def convert(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="local export"),
    adapter: str = typer.Option(..., "--adapter", help="adapter name, e.g. dudley-csv"),
    out: Path = typer.Option(..., "--out", help="directory for the canonical XML files"),
    config: Path | None = ConfigOption,
) -> None:
    """Convert a local export to canonical XML, one file per valid record.

    Problems go to stderr as FILE:ROW:COLUMN: reason (value); exit 1 if any record was bad.
    """
    _convert(file, adapter, out, config)


@friendly
def _convert(file: Path, adapter_name: str, out: Path, config: Path | None) -> None:
    settings = settings_from(config)
    adapter = load_adapters(settings).get(adapter_name)
    out.mkdir(parents=True, exist_ok=True)
    good = bad = 0
    with file.open("rb") as stream:
        for result in adapter.read(stream, file.name):
            if isinstance(result, Converted):
                good += 1
                case = result.assessment.case_ref
                sender = (
                    adapter.authority
                    or (
                        result.assessment.initiator.la_code if result.assessment.initiator else None
                    )
                    or "000"
                )
                env = new_envelope(
                    utc_now,
                    sender=sender,
                    recipient=sender,
                    body=result.assessment,
                    correlation=correlation_id(sender, case),
                    legal_basis=LegalBasis.CONSENT,
                    consent_ref=f"{sender}/{case}/consent",
                )
                target = out / f"{_safe(case)}.xml"
                target.write_bytes(
                    etree.tostring(
                        envelope_to_element(env),
                        xml_declaration=True,
                        encoding="UTF-8",
                        pretty_print=True,
                    )
                )
                if result.consent is not None:
                    # An envelope of its own, like the assessment's: each file can be
                    # validated, signed and verified as it is.
                    consent_env = new_envelope(
                        utc_now,
                        sender=sender,
                        recipient=sender,
                        body=result.consent,
                        correlation=correlation_id(sender, case),
                        legal_basis=LegalBasis.CONSENT,
                        consent_ref=f"{sender}/{case}/consent",
                    )
                    (out / f"{_safe(case)}.consent.xml").write_bytes(
                        etree.tostring(
                            envelope_to_element(consent_env),
                            xml_declaration=True,
                            encoding="UTF-8",
                            pretty_print=True,
                        )
                    )
            else:
                bad += 1
                for problem in result.problems:
                    err_console.print(str(problem), markup=False, highlight=False)
    console.print(f"{good} converted to {out}, {bad} rejected", highlight=False)
    if bad:
        raise typer.Exit(1)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def validate(file: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Validate a canonical XML document against the schema; errors name the element path."""
    validator = SchemaValidator()
    problems = validator.explain(file.read_bytes())
    if problems:
        for p in problems:
            err_console.print(f"{file}: {p}", markup=False, highlight=False)
        raise typer.Exit(1)
    console.print(f"{file}: valid", highlight=False)


def sign(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    authority: str = typer.Option(..., "--authority"),
    out: Path | None = typer.Option(None, "--out", help="output file (default: stdout)"),
    config: Path | None = ConfigOption,
) -> None:
    """Sign a canonical envelope with the authority's key."""
    _sign(file, authority, out, config)


@friendly
def _sign(file: Path, authority: str, out: Path | None, config: Path | None) -> None:
    settings = settings_from(config)
    key_dir = settings.keys_dir / authority
    if not (key_dir / "key.pem").exists():
        raise CafgwError(
            f"no key for {authority} in {key_dir}; run: cafgw keys init --authority {authority}"
        )
    signer = Signer.from_files(key_dir / "key.pem", key_dir / "cert.pem")
    root = xmlsafe.parse(
        file.read_bytes(),
        max_bytes=settings.limits.max_message_bytes,
        max_depth=settings.limits.max_xml_depth,
    )
    # Sign only what verify will accept: a whole, schema-valid Envelope sent by this authority.
    if root.tag != f"{{{NAMESPACE}}}Envelope":
        raise SchemaError(
            [
                f"{file}: the root element is {etree.QName(root).localname}, not Envelope; "
                "only a whole canonical envelope can be signed (cafgw convert writes one per file)"
            ]
        )
    SchemaValidator().validate(root)
    sender = root.findtext(f"{{{NAMESPACE}}}Header/{{{NAMESPACE}}}Sender")
    if sender != authority:
        raise CafgwError(
            f"{file}: the envelope's sender is {sender}, not {authority}; verify would refuse "
            "a signature by another authority"
        )
    data = signer.sign(root)
    if out is None:
        typer.echo(data.decode("utf-8"))
    else:
        out.write_bytes(data)
        console.print(f"signed {file} as {authority} -> {out}", highlight=False)


def verify(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    config: Path | None = ConfigOption,
) -> None:
    """Verify signature, trust and schema; exit 0 only if all pass."""
    settings = settings_from(config)
    try:
        verifier = Verifier(
            TrustStore.from_settings(settings),
            max_bytes=settings.limits.max_message_bytes,
            max_depth=settings.limits.max_xml_depth,
        )
        verified = verifier.verify(file.read_bytes())
        SchemaValidator().validate(verified.root, verified.message_id)
    except CafgwError as exc:
        err_console.print(f"{file}: NOT VALID: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    console.print(
        f"{file}: valid — message {verified.message_id} signed by {verified.sender}, "
        f"digest {verified.digest}",
        highlight=False,
    )
