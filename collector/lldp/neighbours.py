"""LLDP-MIB remote systems data (IEEE 802.1AB-2005 §12): who a switch sees on its ports.

One GETBULK walk of ``lldpRemoteSystemsData`` returns both ``lldpRemTable`` (chassis, port,
system name and description of each neighbour) and ``lldpRemManAddrTable`` (its management
addresses, carried in the index only: the address columns are not-accessible).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from gufo.snmp import ValueType

from collector.snmp.values import integer, mac, non_empty

REMOTE_SYSTEMS_DATA = "1.0.8802.1.1.2.1.4"
REM_ENTRY = "1.0.8802.1.1.2.1.4.1.1"  # index: lldpRemTimeMark.lldpRemLocalPortNum.lldpRemIndex
MAN_ADDR_ENTRY = "1.0.8802.1.1.2.1.4.2.1"  # index: the above . addrSubtype . (length) . address
_REM_COLUMNS = {
    4: "chassis_id_subtype",
    5: "chassis_id",
    6: "port_id_subtype",
    7: "port_id",
    8: "port_descr",
    9: "sys_name",
    10: "sys_descr",
}
_ADDR_IPV4, _ADDR_IPV6 = 1, 2  # IANA AddressFamilyNumbers


@dataclass
class Neighbour:
    """One row of lldpRemTable: a device on ``local_port`` of the switch that reported it."""

    local_port: int
    index: int
    chassis_id: str | None = None
    port_id: str | None = None
    port_descr: str | None = None
    sys_name: str | None = None
    sys_descr: str | None = None
    addresses: list[str] = field(default_factory=list)

    @property
    def address(self) -> str | None:
        """The first IPv4 management address, else the first one of any family."""
        return next((a for a in self.addresses if "." in a), self.addresses[0] if self.addresses else None)


def _id_text(value: ValueType, subtype: int | None, mac_subtype: int) -> str | None:
    if subtype == mac_subtype:
        return mac(value)
    text = non_empty(value, 255)
    if text is not None and text.isprintable():
        return text
    return value.hex() if isinstance(value, bytes) and value else None


def _address(parts: list[int]) -> str | None:
    if not parts:
        return None
    family, rest = parts[0], parts[1:]
    if rest and rest[0] == len(rest) - 1:  # the length prefix of a variable-length index string
        rest = rest[1:]
    try:
        if family == _ADDR_IPV4 and len(rest) == 4:
            return str(ipaddress.IPv4Address(bytes(rest)))
        if family == _ADDR_IPV6 and len(rest) == 16:
            return str(ipaddress.IPv6Address(bytes(rest)))
    except ValueError:
        return None
    return None


def parse(varbinds: Iterable[tuple[str, ValueType]]) -> list[Neighbour]:
    """Neighbours from a walk of :data:`REMOTE_SYSTEMS_DATA`, in (local port, index) order.
    Rows of an older time mark are replaced by newer ones with the same port and index."""
    rows: dict[tuple[int, int], dict[str, ValueType]] = {}
    addresses: dict[tuple[int, int], list[str]] = {}
    for raw_oid, value in varbinds:
        oid = raw_oid.lstrip(".")
        for entry in (REM_ENTRY, MAN_ADDR_ENTRY):
            if oid.startswith(entry + "."):
                try:
                    parts = [int(p) for p in oid[len(entry) + 1 :].split(".")]
                except ValueError:
                    break
                if len(parts) < 4:
                    break
                key = (parts[2], parts[3])
                if entry == REM_ENTRY:
                    name = _REM_COLUMNS.get(parts[0])
                    if name is not None:
                        rows.setdefault(key, {})[name] = value
                else:
                    address = _address(parts[4:])
                    if address is not None and address not in addresses.setdefault(key, []):
                        addresses[key].append(address)
                break
    neighbours = []
    for (port, index), row in sorted(rows.items()):
        neighbours.append(
            Neighbour(
                local_port=port,
                index=index,
                chassis_id=_id_text(row.get("chassis_id"), integer(row.get("chassis_id_subtype")), 4),
                port_id=_id_text(row.get("port_id"), integer(row.get("port_id_subtype")), 3),
                port_descr=non_empty(row.get("port_descr")),
                sys_name=non_empty(row.get("sys_name"), 255),
                sys_descr=non_empty(row.get("sys_descr"), 8192),
                addresses=addresses.get((port, index), []),
            )
        )
    return neighbours


def slug(text: str) -> str:
    """A device id (collector.model.IDENT_PATTERN) from a system name or chassis id."""
    cleaned = "".join(c if c.isalnum() or c in ".-" else "-" for c in text.lower())
    while "--" in cleaned:
        cleaned = cleaned.replace("--", "-")
    return cleaned.strip("-.")[:128]


def neighbour_id(neighbour: Neighbour) -> str:
    """A device id for an LLDP neighbour: its system name, else its chassis id, else its place."""
    for candidate in (neighbour.sys_name, neighbour.chassis_id):
        if candidate and slug(candidate):
            return slug(candidate)
    return f"lldp-port{neighbour.local_port}-{neighbour.index}"
