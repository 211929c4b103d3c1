"""Parse XML from untrusted peers without giving them a lever.

Every document that arrives from the broker, the HTTP API or a file drop
goes through :func:`parse` before anything else reads it. It refuses, with
:class:`gateway.errors.UnsafeXmlError`:

- documents larger than ``max_bytes`` (checked before the parser sees a byte);
- any DOCTYPE, DTD or entity declaration (XXE, billion laughs), found by a
  byte scan before parsing and checked again on the parsed tree;
- encodings other than UTF-8 / US-ASCII (declared, by byte-order mark, or
  detected by libxml2 from the first bytes, e.g. EBCDIC), so that the byte
  scan cannot be dodged by re-encoding;
- processing instructions (nothing in the exchange uses them);
- nesting deeper than ``max_depth`` (libxml2 already stops at 256 levels
  without ``huge_tree``, so a 100k-deep document cannot exhaust the stack);
- anything that is not well-formed.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from lxml import etree

from gateway.errors import UnsafeXmlError

__all__ = ["parse", "parser"]

# Markup that only a DTD can introduce. XML names these in upper case, so a
# case-sensitive scan is exact; it may refuse the same text inside CDATA,
# which no canonical document needs.
_DTD_MARKERS: tuple[tuple[bytes, str], ...] = (
    (b"<!DOCTYPE", "DOCTYPE not allowed"),
    (b"<!ENTITY", "entity declarations not allowed"),
    (b"<!ELEMENT", "DTD declarations not allowed"),
    (b"<!ATTLIST", "DTD declarations not allowed"),
)
_XML_DECL = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_ALLOWED_ENCODINGS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
# Byte patterns of UTF-16 / UTF-32 documents (with or without a BOM).
_WIDE_PREFIXES = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00", b"\x00<", b"<\x00")
_LIBXML_DEPTH_LIMIT = 256
_UTF8_BOM = b"\xef\xbb\xbf"

_local = threading.local()


def parser() -> etree.XMLParser:
    """The hardened lxml parser of the calling thread (created once per thread).

    Safe for re-parsing a document (or part of one) that :func:`parse`
    already accepted.
    """
    found: etree.XMLParser | None = getattr(_local, "parser", None)
    if found is None:
        # lxml serialises concurrent use of one parser; one per thread avoids
        # that lock on the hot path.
        found = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_pis=False,  # kept so that we can refuse them, not drop them silently
            collect_ids=False,
        )
        _local.parser = found
    return found


def parse(data: bytes, *, max_bytes: int, max_depth: int) -> etree._Element:
    """Parse ``data`` into an element tree, or raise :class:`UnsafeXmlError`."""
    if len(data) > max_bytes:
        raise UnsafeXmlError(f"message is {len(data)} bytes, limit {max_bytes}")
    _check_encoding(data)
    for marker, reason in _DTD_MARKERS:
        if marker in data:
            raise UnsafeXmlError(reason)
    try:
        root = etree.fromstring(data, parser())
    except etree.XMLSyntaxError as exc:
        if "depth" in str(exc).lower():
            raise UnsafeXmlError(
                f"nesting deeper than {min(max_depth, _LIBXML_DEPTH_LIMIT)}"
            ) from exc
        raise UnsafeXmlError(f"not well-formed XML: {exc}") from exc
    _check_tree(root, max_depth)
    return root


def _check_encoding(data: bytes) -> None:
    if data.startswith(_WIDE_PREFIXES):
        raise UnsafeXmlError("only UTF-8 XML is accepted (found UTF-16 or UTF-32)")
    # libxml2 also detects EBCDIC and other encodings from the first bytes;
    # in those the byte scan below would read nothing. A UTF-8 document
    # starts with '<' (after an optional BOM and white space).
    body = data[len(_UTF8_BOM) :] if data.startswith(_UTF8_BOM) else data
    if body.strip(b" \t\r\n") and not body.lstrip(b" \t\r\n").startswith(b"<"):
        raise UnsafeXmlError("only UTF-8 XML is accepted (the document does not start with '<')")
    match = _XML_DECL.match(data)
    if match and match.group(1).decode("ascii").lower() not in _ALLOWED_ENCODINGS:
        raise UnsafeXmlError(
            f"only UTF-8 XML is accepted (declared encoding {match.group(1).decode('ascii')})"
        )


def _check_tree(root: etree._Element, max_depth: int) -> None:
    # Backstop for the byte scan: nothing DTD-shaped may have survived parsing.
    docinfo = root.getroottree().docinfo
    has_dtd = docinfo.internalDTD is not None or docinfo.externalDTD is not None
    if getattr(docinfo, "doctype", "") or has_dtd:
        raise UnsafeXmlError("DOCTYPE not allowed")
    for node in root.getroottree().iter(etree.Entity, etree.ProcessingInstruction):
        if isinstance(node, etree._Entity):
            raise UnsafeXmlError(f"entity reference {node.text} not allowed")
        raise UnsafeXmlError(f"processing instruction <?{_target(node)}?> not allowed")
    # Siblings of the root (comments, PIs before or after it) are not in iter().
    for sibling in (*root.itersiblings(preceding=True), *root.itersiblings()):
        if isinstance(sibling, etree._ProcessingInstruction):
            raise UnsafeXmlError(f"processing instruction <?{_target(sibling)}?> not allowed")
    if _too_deep(max_depth)(root):
        raise UnsafeXmlError(f"nesting deeper than {max_depth}")


def _target(node: etree._Element) -> str:
    target = getattr(node, "target", "?")
    return target.decode("utf-8", "replace") if isinstance(target, bytes) else str(target)


@lru_cache(maxsize=8)
def _too_deep(max_depth: int) -> etree.XPath:
    # One compiled XPath per limit: libxml2 walks the levels in C, far
    # cheaper than computing every element's depth in Python.
    return etree.XPath("boolean(/" + "/".join(["*"] * (max_depth + 1)) + ")")
