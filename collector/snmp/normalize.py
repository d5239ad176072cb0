"""Turn raw SNMP answers (OID → value) into the normalized observation's parts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gufo.snmp import ValueType

from collector.model import Health, HealthReason, HealthStatus, Interface, Severity
from collector.snmp import oids
from collector.snmp.values import integer, mac, non_empty, text

_UP = 1  # ifAdminStatus/ifOperStatus up(1), RFC 2863


def table_rows(
    entry_oid: str, columns: Mapping[int, str], varbinds: Iterable[tuple[str, ValueType]]
) -> dict[int, dict[str, ValueType]]:
    """Group a walked table ``entry.column.index`` into rows by (single sub-identifier) index.

    Columns we do not read and multi-part indexes are skipped.
    """
    prefix = entry_oid + "."
    skip = len(prefix)
    by_column = {str(number): name for number, name in columns.items()}
    rows: dict[int, dict[str, ValueType]] = {}
    for oid, value in varbinds:
        column, _, index = oid[skip:].partition(".")
        name = by_column.get(column)
        if name is None or not index.isdigit() or not oid.startswith(prefix):
            continue
        row = rows.get(int(index))
        if row is None:
            row = rows[int(index)] = {}
        row[name] = value
    return rows


def interfaces(rows: Mapping[int, Mapping[str, ValueType]]) -> list[Interface]:
    result = []
    for index in sorted(rows)[:1024]:
        row = rows[index]
        admin = integer(row.get("ifAdminStatus"))
        oper = integer(row.get("ifOperStatus"))
        result.append(
            Interface(
                index=index,
                descr=text(row.get("ifDescr")),
                type=integer(row.get("ifType")),
                mtu=integer(row.get("ifMtu")),
                speed_bps=integer(row.get("ifSpeed")),
                mac=mac(row.get("ifPhysAddress")),
                admin_up=None if admin is None else admin == _UP,
                oper_up=None if oper is None else oper == _UP,
                in_octets=integer(row.get("ifInOctets")),
                out_octets=integer(row.get("ifOutOctets")),
                in_errors=integer(row.get("ifInErrors")),
                out_errors=integer(row.get("ifOutErrors")),
            )
        )
    return result


def chassis(rows: Mapping[int, Mapping[str, ValueType]]) -> dict[str, str]:
    """The ENTITY-MIB entry that describes the device itself, as column name → non-empty text.

    The lowest-indexed chassis(3) entry; without one, the lowest-indexed entry with a model or
    serial. Empty when the table is missing, which many endpoints do.
    """

    def fields(row: Mapping[str, ValueType]) -> dict[str, str]:
        found = {}
        for name, value in row.items():
            if name == "entPhysicalClass":
                continue
            decoded = non_empty(value)
            if decoded is not None:
                found[name] = decoded
        return found

    ordered = sorted(rows)
    for index in ordered:
        if integer(rows[index].get("entPhysicalClass")) == oids.ENT_CLASS_CHASSIS:
            return fields(rows[index])
    for index in ordered:
        candidate = fields(rows[index])
        if "entPhysicalModelName" in candidate or "entPhysicalSerialNum" in candidate:
            return candidate
    return {}


def health(ifaces: list[Interface], errors: list[str]) -> Health:
    """Reachable is ``ok``; an interface that is administratively up but down is a reason.

    The device answered, so it has a working interface: only when every (non-loopback)
    interface reports down is the device ``degraded``. A phone's unused PC port is info.
    """
    physical = [i for i in ifaces if i.type != oids.IF_TYPE_SOFTWARE_LOOPBACK]
    reasons = [
        HealthReason(
            code="interface_down",
            message=f"interface {iface.index} ({iface.descr or '?'}) is enabled but down",
            severity=Severity.INFO,
        )
        for iface in physical
        if iface.admin_up and iface.oper_up is False
    ]
    reasons.extend(
        HealthReason(code="partial_read", message=error, severity=Severity.INFO) for error in errors
    )
    all_down = bool(physical) and not any(i.oper_up for i in physical)
    status = HealthStatus.DEGRADED if all_down else HealthStatus.OK
    return Health(status=status, reasons=reasons[:64])
