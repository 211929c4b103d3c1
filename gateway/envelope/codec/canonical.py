"""A body written straight to its canonical octets, for its content digest (issue 14).

``outbox.content_digest`` is the SHA-256 of a body's canonical XML (C14N 1.0):
the same local record received again has the same digest, whatever its
message id or time. Written with lxml, a body became a tree of about a hundred
elements only to be serialised and dropped: 0.116 ms per received record, of
the 0.86 ms the receiver spent on it; written here, 0.065 ms.

The codec's writers fill a ``Canonical`` element exactly as they fill an lxml
one: the primitives in ``xml`` (``sub``, ``put``, ``put_instant``,
``put_date_or_instant``, ``put_attr``), the element's own ``set`` and ``[-1]``,
and ``text`` set (never read back). ``octets()`` then writes what lxml's C14N
writes for the same tree: the namespace declared on the root alone, attributes
sorted by name, every element as a start and an end tag, and C14N's escapes in
text and attribute values. ``tests/unit/test_canonical_body.py`` holds the two
writings equal for every code point and for every message type.

Anything else raises ``NotPlain`` and the caller writes the body with lxml,
which answers as it always did (a digest, or the ``SchemaError`` naming the
element): text outside XML's ``Char`` production, a value that is not a
``str``, a writer's own refusal (``xml.problem``), reading ``text`` back. An
lxml method it lacks raises ``AttributeError``, which ``content_digest`` takes
the same way (a ``__getattr__`` here would have slowed every attribute read of
the class: CPython then stops specialising them). mypy checks the writers against lxml's
element only; the tests check them against this one.
"""

from __future__ import annotations

import re

from gateway.model import NAMESPACE

# Outside XML 1.0's Char production: lxml refuses these (NUL, control characters)
# or they are not characters at all (lone surrogates, U+FFFE, U+FFFF).
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# The canonical namespace's declaration, as C14N writes it on a document's root.
DECLARATION = f' xmlns="{NAMESPACE}"'


class NotPlain(Exception):
    """A value the canonical writer leaves to lxml."""


# Text (and attribute values) C14N writes as they are: XML characters, none it
# escapes. Most of a record is such text; matched once, it skips the checks below.
_PLAIN_TEXT = re.compile("[\t\n\x20-\x25\x27-\x3b=\x3f-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
_PLAIN_ATTRIBUTE = re.compile(
    "[\x20\x21\x23-\x25\x27-\x3b=>-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*"
)


def _not_text(value: object) -> NotPlain:
    """A value that is not a ``str`` (the patterns match text only): left to lxml,
    which takes ASCII ``bytes`` as text and answers for anything else."""
    return NotPlain(f"{type(value).__name__} is not text")


def _checked(value: str) -> str:
    if _NOT_XML_CHAR.search(value) is not None:
        # Not the value: it is a record's text, and this may end up in a traceback.
        raise NotPlain("not an XML character")
    return value


def _text(value: str) -> str:
    """C14N's escapes in character data."""
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:
        value = value.replace("\r", "&#xD;")
    return value


def _attribute(value: str) -> str:
    """C14N's escapes in an attribute value."""
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace('"', "&quot;")
        .replace("\t", "&#x9;")
        .replace("\n", "&#xA;")
        .replace("\r", "&#xD;")
    )


class Canonical:
    """An element of the canonical namespace, written straight to C14N.

    A child with text only (most of a body: ``put``) is kept as its name and
    escaped text, and becomes an element only if a writer takes it back (``[-1]``,
    to set an attribute).
    """

    __slots__ = ("_attributes", "_children", "_name", "_text")

    def __init__(self, name: str, text: str = "") -> None:
        self._name = name
        self._text = text  # escaped
        self._attributes: dict[str, str] = {}
        self._children: list[Canonical | tuple[str, str]] = []

    @property
    def text(self) -> str:
        """Not kept as written (it is stored escaped): a writer reading it back
        gets lxml's writing instead."""
        raise NotPlain("text read back")

    @text.setter
    def text(self, value: str) -> None:
        try:
            plain = _PLAIN_TEXT.fullmatch(value)
        except TypeError:
            raise _not_text(value) from None
        self._text = value if plain else _text(_checked(value))

    def child(self, name: str) -> Canonical:
        """Append an empty child element ``name``."""
        element = Canonical(name)
        self._children.append(element)
        return element

    def leaf(self, name: str, value: str) -> None:
        """Append ``<name>value</name>``."""
        try:
            plain = _PLAIN_TEXT.fullmatch(value)
        except TypeError:
            raise _not_text(value) from None
        self._children.append((name, value if plain else _text(_checked(value))))

    def set(self, name: str, value: str) -> None:
        """Set the attribute ``name`` (no namespace)."""
        try:
            plain = _PLAIN_ATTRIBUTE.fullmatch(value)
        except TypeError:
            raise _not_text(value) from None
        self._attributes[name] = value if plain else _attribute(_checked(value))

    def __getitem__(self, index: int) -> Canonical:
        found = self._children[index]
        if isinstance(found, tuple):
            found = self._children[index] = Canonical(*found)
        return found

    def octets(self) -> bytes:
        """This element as the root of a document, in C14N 1.0, UTF-8."""
        return self.written(DECLARATION).encode()

    def written(self, declaration: str = "") -> str:
        """This element in C14N 1.0; ``declaration`` in its start tag (``DECLARATION``
        at a document's root, nothing inside an element that declares it)."""
        out: list[str] = []
        self._write(out, declaration)
        return "".join(out)

    def _write(self, out: list[str], declaration: str = "") -> None:
        name = self._name
        if self._attributes:
            attributes = "".join(f' {k}="{v}"' for k, v in sorted(self._attributes.items()))
            out.append(f"<{name}{declaration}{attributes}>{self._text}")
        else:
            out.append(f"<{name}{declaration}>{self._text}")
        for child in self._children:
            if isinstance(child, tuple):
                out.append(f"<{child[0]}>{child[1]}</{child[0]}>")
            else:
                child._write(out)
        out.append(f"</{name}>")
