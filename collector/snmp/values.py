"""Conversions of the values gufo-snmp returns (bytes, str for OIDs, int) into our types."""

from __future__ import annotations

from gufo.snmp import ValueType

_ZERO_MAC = "00:00:00:00:00:00"


def text(value: ValueType, limit: int = 1024) -> str | None:
    """An OCTET STRING as text: UTF-8 where it is, Latin-1 otherwise, trailing NULs dropped."""
    if value is None:
        return None
    if isinstance(value, bytes):
        raw = value.rstrip(b"\x00")
        try:
            decoded = raw.decode()
        except UnicodeDecodeError:
            decoded = raw.decode("latin-1")
    else:
        decoded = str(value)
    return decoded[:limit]


def non_empty(value: ValueType, limit: int = 1024) -> str | None:
    decoded = text(value, limit)
    if decoded is None:
        return None
    decoded = decoded.strip()
    return decoded or None


def integer(value: ValueType) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return None


def mac(value: ValueType) -> str | None:
    """ifPhysAddress as ``aa:bb:cc:dd:ee:ff``; None when empty, all zero or not 6 bytes."""
    if not isinstance(value, bytes) or len(value) != 6:
        return None
    formatted = ":".join(f"{octet:02x}" for octet in value)
    return None if formatted == _ZERO_MAC else formatted
