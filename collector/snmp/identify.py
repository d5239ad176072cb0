"""Device identification (vendor, family, model, serial, firmware) from SNMP, as data.

The knowledge lives in fingerprint files (:mod:`collector.snmp.catalog`). A fingerprint matches
when every condition it sets holds; the first matching fingerprint of the first vendor (in the
catalog's order) wins. Values come from its sysDescr named groups first, then from the ENTITY-MIB
chassis entry, then from the fingerprint's fixed ``model``. sysDescr is matched with its
whitespace normalised (line breaks as spaces); the driver keeps the raw string. Nothing recognised
gives an honest ``unknown`` with ``reason`` saying what was read and whose enterprise number the
sysObjectID is under.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from collector.snmp.catalog import Catalog, Fingerprint, load, normalise

UNKNOWN = "unknown"
_SHOWN = 80


@dataclass(frozen=True, slots=True)
class Identification:
    vendor: str = UNKNOWN
    family: str = UNKNOWN
    model: str = UNKNOWN
    serial: str | None = None
    version: str | None = None
    scheme: str | None = None
    rule: str | None = field(default=None, compare=False)
    # The build id the device appends to its release ("RoomOS 11.14.2.3 2f2a4b1c9d0"), when it does.
    build: str | None = None
    # Why nothing (or only the vendor) was recognised: the fields read and the enterprise number.
    reason: str | None = field(default=None, compare=False)

    @property
    def recognised(self) -> bool:
        return self.family != UNKNOWN


def _match(
    catalog: Catalog, fp: Fingerprint, descr: str, sys_object_id: str, entity: Mapping[str, str]
) -> dict[str, str] | None:
    if fp.object_id is not None:
        oid = sys_object_id.strip().lstrip(".")
        prefix = fp.object_id.rstrip(".")
        if not (oid == prefix or oid.startswith(prefix + ".")):
            return None
    if fp.entity_mfg is not None and not catalog.pattern(fp.entity_mfg).search(
        entity.get("entPhysicalMfgName", "")
    ):
        return None
    groups: dict[str, str] = {}
    for regex in fp.descr:
        found = catalog.pattern(regex).search(descr)
        if found is None:
            return None
        groups.update({k: v.strip() for k, v in found.groupdict().items() if v and v.strip()})
    for regex in fp.descr_optional:
        found = catalog.pattern(regex).search(descr)
        if found is not None:
            groups.update(
                {k: v.strip() for k, v in found.groupdict().items() if v and v.strip() and k not in groups}
            )
    return groups


def _unknown(catalog: Catalog, descr: str, sys_object_id: str, entity: Mapping[str, str]) -> Identification:
    read = []
    shown = descr if len(descr) <= _SHOWN else descr[:_SHOWN] + "…"
    read.append(f"sysDescr {shown!r}" if descr else "sysDescr empty")
    read.append(f"sysObjectID {sys_object_id.strip()}" if sys_object_id.strip() else "sysObjectID empty")
    columns = sorted(k for k, v in entity.items() if v)
    read.append(f"ENTITY-MIB {', '.join(columns)}" if columns else "no ENTITY-MIB chassis entry")
    owner = catalog.enterprise_of(sys_object_id)
    vendor = UNKNOWN
    if owner is None:
        whose = "sysObjectID is not under an enterprise number"
    else:
        number, vendor, label = owner
        if vendor != UNKNOWN:
            whose = f"enterprise {number} ({label}) belongs to {vendor}"
        elif label:
            whose = f"enterprise {number} is {label}, an agent many vendors ship: it names no vendor"
        else:
            whose = f"enterprise {number} is not in the fingerprint files"
    reason = f"no fingerprint matched; read {'; '.join(read)}; {whose}"
    return Identification(vendor=vendor, serial=entity.get("entPhysicalSerialNum"), reason=reason)


def identify(sys_descr: str, sys_object_id: str, entity: Mapping[str, str] | None = None) -> Identification:
    """Identify a device from its sysDescr, sysObjectID and ENTITY-MIB chassis entry.

    ``entity`` maps ENTITY-MIB column names (``entPhysicalModelName`` …) to non-empty values;
    it is empty for devices without the table. Never raises on odd input.
    """
    catalog = load()
    entity = {k: v for k, v in (entity or {}).items() if isinstance(v, str)}
    descr = normalise(sys_descr)
    for vendor in catalog.vendors:
        for fp in vendor.fingerprints:
            groups = _match(catalog, fp, descr, sys_object_id, entity)
            if groups is None:
                continue
            version = groups.get("version") or next(
                (normalise(entity[col]) for col in fp.entity_version if normalise(entity.get(col, ""))), None
            )
            if version is not None and fp.version_format is not None:
                found = catalog.pattern(fp.version_format).search(version)
                version = found["version"] if found else version
            model = groups.get("model") or normalise(entity.get("entPhysicalModelName", "")) or fp.model
            serial = groups.get("serial") or normalise(entity.get("entPhysicalSerialNum", "")) or None
            return Identification(
                vendor=vendor.vendor,
                family=fp.family,
                model=model or UNKNOWN,
                serial=serial,
                version=version,
                scheme=fp.scheme if version else None,
                rule=f"{vendor.vendor}/{fp.id}",
                build=groups.get("build"),
            )
    return _unknown(catalog, descr, sys_object_id, entity)
