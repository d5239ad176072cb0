"""The codec's XML (``/status.xml``, ``/getxml``, ``/putxml`` answers) as nested dicts.

An element with children becomes a dict; a leaf becomes its text. Elements with an ``item``
attribute are instances of a multi-instance node (``<ConnectedDevice item="1">``) and become a
list in ``item`` order, even when there is one. Entities and DTDs are refused (defusedxml would be
a dependency for one call; the stdlib parser does not fetch external entities, and we reject any
document that declares some, so a hostile codec cannot blow up memory).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from collector.errors import BadResponse


def parse(body: bytes, what: str) -> ET.Element:
    """Parse an XML answer; raises :class:`BadResponse` naming ``what`` when it is not XML."""
    if b"<!DOCTYPE" in body[:4096] or b"<!ENTITY" in body:
        raise BadResponse(f"{what}: XML with a DTD or entities is refused")
    try:
        return ET.fromstring(body)  # noqa: S314 - DTDs/entities refused above
    except ET.ParseError as err:
        raise BadResponse(f"{what}: not well-formed XML ({err})") from None


MAX_DEPTH = 64  # the codec's status tree is about 8 levels deep


def to_tree(element: ET.Element, depth: int = 0) -> dict[str, Any]:
    """The element's children as nested dicts; :class:`BadResponse` past :data:`MAX_DEPTH` levels
    (a hostile document would otherwise end in RecursionError, which no caller expects)."""
    if depth > MAX_DEPTH:
        raise BadResponse(f"XML nested deeper than {MAX_DEPTH} levels")
    tree: dict[str, Any] = {}
    for child in element:
        value: Any = to_tree(child, depth + 1) if len(child) else (child.text or "").strip()
        if "item" in child.attrib:
            tree.setdefault(child.tag, [])
            if isinstance(tree[child.tag], list):
                tree[child.tag].append(value)
        else:
            tree[child.tag] = value
    return tree


def command_xml(path: str, arguments: dict[str, str]) -> bytes:
    """``SystemUnit.Boot`` + ``{"Action": "Restart"}`` →
    ``<Command><SystemUnit><Boot><Action>Restart</Action></Boot></SystemUnit></Command>``."""
    root = ET.Element("Command")
    node = root
    for part in path.split("."):
        node = ET.SubElement(node, part)
    for key, value in arguments.items():
        ET.SubElement(node, key).text = value
    return ET.tostring(root)


def command_result(body: bytes, path: str) -> dict[str, str]:
    """The result of a ``/putxml`` command: ``{"status": "OK", "LogId": …}``.

    Raises :class:`BadResponse` when the codec answered ``status="Error"`` (with its Reason) or
    something without a result element."""
    root = parse(body, f"command {path}")
    result = next((el for el in root.iter() if el.tag.endswith("Result")), None)
    if result is None:
        raise BadResponse(f"command {path}: the answer has no result element")
    values = {child.tag: (child.text or "").strip() for child in result}
    status = result.attrib.get("status", "")
    if status.lower() != "ok":
        reason = values.get("Reason") or values.get("Description") or "no reason given"
        raise BadResponse(f"command {path} refused by the codec: {reason}")
    return {"status": status, **values}
