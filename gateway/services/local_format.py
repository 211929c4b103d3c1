"""Received canonical messages rendered in the recipient authority's own format.

The authority's ``adapter`` in ``authorities.yaml`` writes an Assessment
the way its case system exports one (Wolverhampton gets EHM JSON, Sandwell
FWI XML). Only Assessments have a local form; other bodies are served as
canonical XML with a note saying why.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from adapters.base import Adapter
from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.errors import CafgwError
from gateway.model import Assessment, MessageType

_MEDIA = {"csv": "text/csv", "json": "application/json", "xml": "application/xml"}
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)["']""")


@dataclass(frozen=True)
class LocalForm:
    """One message as served: local bytes (base64 and text) or canonical XML with a note."""

    local: bool
    content_type: str
    content: str
    content_base64: str | None = None
    note: str | None = None


def adapter_of(gw: Gateway, authority: str) -> Adapter | None:
    """The adapter that writes ``authority``'s local format, or ``None`` if it has none.

    ``UnknownAdapterError`` if ``authorities.yaml`` names an adapter that is not loaded.
    """
    name = gw.settings.directory.get(authority).adapter
    return None if name is None else gw.adapters.get(name)


def render(gw: Gateway, adapter: Adapter, message_type: str, body: bytes) -> LocalForm:
    """``body`` (signed canonical XML) in ``adapter``'s format, or canonical with a note."""
    canonical = LocalForm(False, "application/xml", body.decode("utf-8"))
    if message_type != MessageType.ASSESSMENT.value:
        note = f"a {message_type} has no local form in {adapter.name}; served as canonical XML"
        return _with_note(canonical, note)
    limits = gw.settings.limits
    try:
        root = xmlsafe.parse(
            body, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
        )
        envelope = element_to_envelope(root)
        if not isinstance(envelope.body, Assessment):
            return _with_note(canonical, "the body is not an Assessment; served as canonical XML")
        data = adapter.write([envelope.body])
    except CafgwError as exc:
        note = f"cannot be written as {adapter.name}: {exc}; served as canonical XML"
        return _with_note(canonical, note)
    encoding = _encoding(adapter, data)
    return LocalForm(
        True,
        f"{media_type(adapter)}; charset={encoding}",
        data.decode(encoding, errors="replace"),
        base64.b64encode(data).decode("ascii"),
    )


def media_type(adapter: Adapter) -> str:
    """The media type of the adapter's files (from its kind, else its name)."""
    kind = getattr(getattr(adapter, "mapping", None), "kind", None)
    if not isinstance(kind, str) or kind not in _MEDIA:
        kind = adapter.name.rpartition("-")[2]
    return _MEDIA.get(kind, "application/octet-stream")


def _encoding(adapter: Adapter, data: bytes) -> str:
    declared = _XML_ENCODING.match(data)
    if declared:
        return declared.group(1).decode("ascii")
    encoding = getattr(getattr(adapter, "mapping", None), "encoding", None)
    return encoding if isinstance(encoding, str) else "utf-8"


def _with_note(form: LocalForm, note: str) -> LocalForm:
    return LocalForm(form.local, form.content_type, form.content, form.content_base64, note)
