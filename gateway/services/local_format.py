"""Received canonical messages rendered in the recipient authority's own format.

The authority's ``adapter`` in ``authorities.yaml`` writes an Assessment
the way its case system exports one (Wolverhampton gets EHM JSON, Sandwell
FWI XML). Recall, correction and erasure notices are written in the same
format (``local_notices``). Other bodies are served as canonical XML with a
note saying why.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

from adapters.base import Adapter
from gateway import model_json
from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.errors import CafgwError
from gateway.model import Assessment, Envelope, MessageType
from gateway.services import local_notices

_MEDIA = {"csv": "text/csv", "json": "application/json", "xml": "application/xml"}
_KIND = {media: kind for kind, media in _MEDIA.items()}
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
    if message_type in local_notices.NOTICE_TYPES:
        return _notice(gw, adapter, body, canonical)
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


def _notice(gw: Gateway, adapter: Adapter, body: bytes, canonical: LocalForm) -> LocalForm:
    """A recall, correction or erasure notice in the adapter's format (``local_notices``)."""
    limits = gw.settings.limits
    try:
        env = element_to_envelope(
            xmlsafe.parse(body, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth)
        )
        header = env.header
        notice = local_notices.fields(header.message_id, header.sender, env.body)
        replacement = getattr(env.body, "replacement", None)
        if isinstance(replacement, Assessment):
            data = adapter.write([replacement])
            supersedes = notice["supersedes"]
            note = (
                f"a correction from {header.sender}: this record supersedes {supersedes}; "
                f"{notice['explanation']}"
            )
            encoding = _encoding(adapter, data)
            return LocalForm(
                True,
                f"{media_type(adapter)}; charset={encoding}",
                data.decode(encoding, errors="replace"),
                base64.b64encode(data).decode("ascii"),
                note,
            )
        media = media_type(adapter)
        data = local_notices.render(_KIND.get(media, "xml"), notice)
    except (CafgwError, TypeError, KeyError) as exc:
        note = f"cannot be written as {adapter.name}: {exc}; served as canonical XML"
        return _with_note(canonical, note)
    media = media if media in _KIND else "application/xml"
    return LocalForm(
        True,
        f"{media}; charset=utf-8",
        data.decode("utf-8"),
        base64.b64encode(data).decode("ascii"),
        f"a {str(notice['notice']).lower()} notice from {header.sender}: {notice['action']}",
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


# --- every message type: the authority's choice in authorities.yaml -------------------


def serve(gw: Gateway, authority: str, message_type: str, body: bytes) -> LocalForm:
    """``body`` (signed canonical XML) as ``authority`` chose to be served ``message_type``.

    ``authorities.<code>.local_formats`` chooses per type: ``adapter`` (the
    authority's own format, for the types it has a place for: an Assessment,
    and a recall, correction or erasure notice), ``json`` (the documented form
    of ``gateway.model_json``) or ``canonical``. Unchosen: the adapter where it
    has a place, else the ``default`` entry, else JSON.
    """
    entry = gw.settings.directory.get(authority)
    how = entry.local_format(message_type)
    canonical = LocalForm(False, "application/xml", body.decode("utf-8"))
    if how == "canonical":
        chosen = f"canonical XML, as authorities.{authority}.local_formats chooses"
        return _with_note(canonical, chosen)
    if how == "adapter":
        return render(gw, gw.adapters.get(str(entry.adapter)), message_type, body)
    try:
        envelope = _envelope(gw, body)
    except CafgwError as exc:
        return _with_note(canonical, f"cannot be read for its local form: {exc}")
    return _json(envelope, None)


def _envelope(gw: Gateway, body: bytes) -> Envelope:
    limits = gw.settings.limits
    root = xmlsafe.parse(body, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth)
    return element_to_envelope(root)


def _json(envelope: Envelope, note: str | None) -> LocalForm:
    text = json.dumps(model_json.envelope_form(envelope), ensure_ascii=False, indent=2)
    data = text.encode("utf-8")
    return LocalForm(
        True,
        "application/json; charset=utf-8",
        text,
        base64.b64encode(data).decode("ascii"),
        note=note,
    )
