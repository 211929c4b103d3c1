"""Canonical model <-> XML of namespace ``urn:caf-exchange:1``.

The one place that knows how ``gateway.model`` looks as XML. Encoding writes
C14N octets for lxml to parse (hot path; lxml elements one by one where only
lxml may write the value); decoding is strict: anything it cannot map
onto the model raises ``SchemaError`` naming the element path. Decoding does
not replace schema validation (``gateway.envelope.schema``): it checks
structure and lexical forms, not every facet of the XSD.

Modules, by what they encode: ``envelope`` (header, body dispatch),
``assessment`` and ``plan`` (the Assessment body), ``bodies`` (the small
bodies), ``dispute``, ``parts`` (child, carer, practitioner, consent shared by
several bodies), ``xml`` (element and lexical primitives) and ``canonical``
(a message written straight to C14N: a body's content digest, and an outbound
Envelope parsed from it by libxml2 rather than built element by element).
"""

from gateway.envelope.codec.envelope import (
    body_from_element,
    body_octets,
    body_to_element,
    element_to_envelope,
    envelope_to_bytes,
    envelope_to_element,
    header_from_element,
    written_envelope,
)

__all__ = [
    "body_from_element",
    "body_octets",
    "body_to_element",
    "element_to_envelope",
    "envelope_to_bytes",
    "envelope_to_element",
    "header_from_element",
    "written_envelope",
]
