"""Recall, correction and erasure notices in a local system's own format.

When the local system already had a record, the sender's recall (or a
correction, or an erasure request) is handed to it like any received
message; with ``format=local`` it is written the way that system reads files
(by the adapter's media type: JSON, XML or CSV), so it can act on it:

- Recall and ErasureRequest: a small notice naming the message(s) by id and
  digest, the reason or ground, the sender's explanation or reference;
- Correction: the corrected record in the adapter's own format (an
  Assessment), with a note naming the message it supersedes.

No notice carries personal data: ids, digests, codes and the sender's text.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from lxml import etree

from adapters.csv_cells import neutralise
from gateway.model import Body, Correction, ErasureRequest, MessageRef, Recall

NOTICE_TYPES = frozenset({"Recall", "Correction", "ErasureRequest"})


def _ref(ref: MessageRef) -> dict[str, str]:
    return {"messageId": ref.message_id, "digest": ref.digest}


def fields(message_id: str, sender: str, body: Body) -> dict[str, object]:
    """What a recall or erasure notice says, as plain fields (no personal data)."""
    if isinstance(body, Recall):
        out: dict[str, object] = {
            "notice": "RECALLED",
            "messageId": message_id,
            "sender": sender,
            "recalls": [_ref(body.original)],
            "reason": body.reason.value,
            "explanation": body.explanation or "",
            "action": "Remove or mark the record recalled: its sender withdrew it.",
        }
        if body.follows is not None:
            out["follows"] = _ref(body.follows)
        return out
    if isinstance(body, ErasureRequest):
        return {
            "notice": "ERASE",
            "messageId": message_id,
            "sender": sender,
            "erase": [_ref(m) for m in body.messages],
            "reason": body.ground.value,
            "explanation": f"request {body.request_ref}",
            "action": "Erase your copies of these records (UK GDPR Art 17, 19).",
        }
    if isinstance(body, Correction):
        return {
            "notice": "SUPERSEDED",
            "messageId": message_id,
            "sender": sender,
            "supersedes": [_ref(body.original)],
            "reason": "CORRECTION",
            "explanation": body.explanation,
            "action": "Replace the superseded record with this corrected one.",
        }
    raise TypeError(f"a {type(body).__name__} is not a notice")


def _refs(data: dict[str, object]) -> Sequence[dict[str, str]]:
    for key in ("recalls", "erase", "supersedes"):
        value = data.get(key)
        if isinstance(value, list):
            return value
    return []


def as_json(data: dict[str, object]) -> bytes:
    return json.dumps({"cafgwNotice": data}, ensure_ascii=False, indent=2).encode("utf-8")


def as_xml(data: dict[str, object]) -> bytes:
    root = etree.Element("CafgwNotice", type=str(data["notice"]))
    for key in ("messageId", "sender", "reason", "explanation", "action"):
        etree.SubElement(root, key[0].upper() + key[1:]).text = str(data.get(key, ""))
    for ref in _refs(data):
        etree.SubElement(root, "Record", messageId=ref["messageId"], digest=ref["digest"])
    follows = data.get("follows")
    if isinstance(follows, dict):
        etree.SubElement(root, "Follows", messageId=follows["messageId"], digest=follows["digest"])
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def as_csv(data: dict[str, object]) -> bytes:
    """One row per record named: notice, notice id, sender, record id, digest, reason, text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["NOTICE", "NOTICE_ID", "SENDER", "RECORD_ID", "DIGEST", "REASON", "TEXT"])
    for ref in _refs(data):
        cells = [str(data[k]) for k in ("notice", "messageId", "sender")]
        cells += [ref["messageId"], ref["digest"]]
        cells += [str(data.get("reason", "")), str(data.get("explanation", ""))]
        # Formula cells as text (OWASP CSV injection), every cell: ids come from the sender too.
        writer.writerow([neutralise(cell) for cell in cells])
    return out.getvalue().encode("utf-8")


def render(kind: str, data: dict[str, object]) -> bytes:
    """The notice in the local format of media kind ``kind`` (``json``, ``xml`` or ``csv``)."""
    if kind == "json":
        return as_json(data)
    if kind == "csv":
        return as_csv(data)
    return as_xml(data)
