"""Which fields of personal data a message carried: the element paths of its body
that hold a value, in document order, repeats folded (``Carers/Carer/Name``)."""

from __future__ import annotations

from lxml import etree

from gateway.envelope import xmlsafe
from gateway.errors import CafgwError
from gateway.model import NAMESPACE
from gateway.settings import Limits

NS = "{" + NAMESPACE + "}"
ENCRYPTED = "(encrypted to the recipient: its fields cannot be read here)"
MAX_FIELDS = 120


def _name(el: etree._Element) -> str:
    tag = str(el.tag)
    return tag[len(NS) :] if tag.startswith(NS) else tag


def _walk(el: etree._Element, path: str, out: dict[str, None]) -> None:
    children = [c for c in el if isinstance(c.tag, str)]
    if not children:
        if (el.text or "").strip() or el.attrib:
            out.setdefault(path, None)
        return
    for child in children:
        _walk(child, f"{path}/{_name(child)}" if path else _name(child), out)


def fields_of(body: bytes | None, limits: Limits) -> tuple[str, ...]:
    """The fields the message's body carried; () if the body is no longer held."""
    if body is None:
        return ()
    try:
        root = xmlsafe.parse(
            body, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
        )
    except CafgwError:
        return ()
    parts = [c for c in root if isinstance(c.tag, str)]
    if len(parts) < 2:
        return ()
    content = parts[1]
    if _name(content) == "EncryptedBody":
        return (ENCRYPTED,)
    found: dict[str, None] = {}
    _walk(content, "", found)
    return tuple(found)[:MAX_FIELDS]
