"""Validation of canonical documents against ``schemas/caf-exchange-1.xsd``.

lxml (libxml2) validates on the hot path; ``xmlschema`` explains a failing
document with path-precise messages for ``cafgw validate``. Both report each
problem with its line and element path (``/Envelope/Header/Sender``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from lxml import etree

from gateway.cpu_budget import BUDGET
from gateway.envelope.codec.xml import path_of
from gateway.errors import ConfigError, SchemaError
from gateway.model import NAMESPACE

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "caf-exchange-1.xsd"

_CLARK = "{" + NAMESPACE + "}"
_ELEMENT_PREFIX = re.compile(r"^Element '[^']*': ")
_STEP = re.compile(r"(?:[A-Za-z_][\w.-]*:)?(\*|[A-Za-z_][\w.-]*)(\[[0-9]+\])?")


def _safe_parser() -> etree.XMLParser:
    # No DTD, no entities, no network: the schema and documents are data, not code.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class SchemaValidator:
    """The canonical XSD, loaded once; validates elements and explains documents."""

    def __init__(self, path: Path = SCHEMA_PATH) -> None:
        self.path = path
        try:
            self._xsd = etree.parse(str(path), _safe_parser())
            first = etree.XMLSchema(self._xsd)
        except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
            raise ConfigError(f"{path}: cannot load the canonical schema: {exc}") from exc
        # An lxml XMLSchema keeps its error log on the object, so each thread gets
        # its own compiled copy instead of all threads queueing on one lock.
        self._local = threading.local()
        self._local.schema = first
        self._compile_lock = threading.Lock()
        self._explainer: Any = None

    def validate(self, root: etree._Element, message_id: str | None = None) -> None:
        """Raise SchemaError naming each problem (line, path, reason) unless ``root`` is valid."""
        schema = self._schema()
        with BUDGET.timed("validate"):
            valid = schema.validate(root)
        if valid:
            return
        log = cast("Iterable[etree._LogEntry]", schema.error_log)
        problems = [_lxml_problem(root, e.line, e.path, e.message) for e in log]
        raise SchemaError(problems or ["document does not validate"], message_id)

    def is_valid(self, root: etree._Element) -> bool:
        """Whether ``root`` validates."""
        return bool(self._schema().validate(root))

    def _schema(self) -> etree.XMLSchema:
        found: etree.XMLSchema | None = getattr(self._local, "schema", None)
        if found is None:
            with self._compile_lock:  # compiling reads the shared XSD tree
                found = etree.XMLSchema(self._xsd)
            self._local.schema = found
        return found

    def explain(self, data: bytes) -> list[str]:
        """Every problem of a document, path-precise (empty if it is valid)."""
        try:
            root = etree.fromstring(data, _safe_parser())
        except etree.XMLSyntaxError as exc:
            return [f"line {exc.lineno}: not well-formed XML: {exc.msg}"]
        explainer = self._xmlschema()
        problems: list[str] = []
        for error in explainer.iter_errors(root):
            elem = getattr(error, "elem", None)
            index = getattr(error, "index", None)
            if isinstance(elem, etree._Element) and isinstance(index, int) and index < len(elem):
                child = elem[index]
                if isinstance(child.tag, str):  # a content-model error: name the offending child
                    elem = child
            if isinstance(elem, etree._Element):
                line, where = elem.sourceline, path_of(elem)
            else:
                line, where = None, _strip_ns(str(getattr(error, "path", None) or "/"))
            reason = _strip_ns(str(getattr(error, "reason", None) or error))
            prefix = f"line {line}: " if line else ""
            problems.append(f"{prefix}{where}: {reason}")
        return problems

    def _xmlschema(self) -> Any:
        # Imported and built on first use: `cafgw validate` needs it, the hot path does not.
        if self._explainer is None:
            import xmlschema  # noqa: PLC0415

            try:
                self._explainer = xmlschema.XMLSchema10(str(self.path))
            except (OSError, xmlschema.XMLSchemaException) as exc:
                raise ConfigError(f"{self.path}: cannot load the canonical schema: {exc}") from exc
        return self._explainer


def _lxml_problem(root: etree._Element, line: int, path: str | None, message: str) -> str:
    where = _resolve(root, path) if path else None
    text = _strip_ns(_ELEMENT_PREFIX.sub("", message))
    prefix = f"line {line}: " if line else ""
    return f"{prefix}{where or '/'}: {text}"


def _resolve(root: etree._Element, path: str) -> str | None:
    """Turn libxml2's ``/*/*[2]/ns0:Signature`` into ``/Envelope/Assessment/Signature``."""
    steps = path.split("/")[1:]
    if not steps or steps[0] != "*":
        return None
    xpath = ["self::*"]
    for step in steps[1:]:
        match = _STEP.fullmatch(step)
        if match is None:
            return None
        name, index = match.group(1), match.group(2) or ""
        xpath.append(("*" if name == "*" else f"*[local-name()='{name}']") + index)
    try:
        found = root.xpath("/".join(xpath))
    except etree.XPathError:
        return None
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return path_of(found[0])
    return None


def _strip_ns(text: str) -> str:
    return text.replace(_CLARK, "")
