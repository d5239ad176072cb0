"""Device identification (vendor, family, model, serial, firmware) from SNMP, as data.

Each vendor has a table of :class:`Rule` lines. A rule matches when every condition it sets
holds (sysObjectID prefix, sysDescr regexes, ENTITY-MIB manufacturer); the first matching rule
of the first matching vendor wins. Values come from the named groups ``model``, ``version`` and
``serial`` of the rule's sysDescr regexes first, then from the ENTITY-MIB chassis entry, then
from the rule's fixed ``model``. A new model that the family patterns do not already cover is
one more line in its vendor's table. Nothing recognised gives an honest ``unknown``; the raw
strings are kept by the driver.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

UNKNOWN = "unknown"
_FLAGS = re.MULTILINE


@dataclass(frozen=True, slots=True)
class Rule:
    family: str
    # Version scheme the firmware catalog parses the version with (firmware_catalog.versions.SCHEMES).
    scheme: str
    # Every regex must match somewhere in sysDescr (re.MULTILINE, so ^/$ are lines).
    descr: tuple[str, ...] = ()
    # Searched when present, never required: named groups fill fields the required ones left.
    descr_optional: tuple[str, ...] = ()
    object_id_prefix: str | None = None
    # Regex that must match the ENTITY-MIB chassis entPhysicalMfgName.
    entity_mfg: str | None = None
    model: str | None = None
    # Which ENTITY-MIB revision column carries the firmware when sysDescr does not.
    entity_version: tuple[str, ...] = ("entPhysicalSoftwareRev", "entPhysicalFirmwareRev")
    # Searched in the version found: its ``version`` group is what the catalog can parse. The
    # device's own string stays in Observation.raw (sysDescr, entPhysicalSoftwareRev).
    version_format: str | None = None

    def __post_init__(self) -> None:
        if not (self.descr or self.object_id_prefix or self.entity_mfg):
            raise ValueError(f"rule for {self.family!r} matches everything; give it a condition")


@dataclass(frozen=True, slots=True)
class Vendor:
    name: str
    # Enterprise subtrees (SNMPv2-SMI enterprises.N) that name the vendor even without a rule.
    enterprises: tuple[str, ...]
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Identification:
    vendor: str = UNKNOWN
    family: str = UNKNOWN
    model: str = UNKNOWN
    serial: str | None = None
    version: str | None = None
    scheme: str | None = None
    rule: str | None = field(default=None, compare=False)

    @property
    def recognised(self) -> bool:
        return self.family != UNKNOWN


# Cisco room devices answer only the system group (vendor-update-paths.md §4.5) and carry
# everything in a multi-line sysDescr: "Cisco Codec\nSoftW: RoomOS 11.17.1.7 2c3f1a9b0e4\n
# MCU: Cisco Room Kit Pro\nDate: 2024-07-15\nS/N: FOC2401X0A1". Older codecs say "ce9.15.3.17".
_CODEC_FIELDS = (r"^MCU: *(?P<model>[^\r\n]+?) *$", r"^S/N: *(?P<serial>\S+)")
# An MPP load "sip88xx.14-2-1MPP0001-272" is release 14.2.1; "sip68xx.11-2-3MSR1-1" is 11.2.3 MSR1-1.
# The catalog reads "sip88xx.14-2-1MPP"; a load prefix with other characters ("sip8845_65.") is dropped.
_MPP_RELEASE = r"(?P<version>(?:\bsip[a-z0-9]{0,12}\.)?\d{1,4}-\d{1,4}-\d{1,6}(?:MSR\d+(?:-\d+)?|MPP))"
CISCO = Vendor(
    "cisco",
    enterprises=("1.3.6.1.4.1.9.", "1.3.6.1.4.1.5596."),  # ciscoSystems, TANDBERG (the codecs)
    rules=(
        Rule(
            "roomos",
            "cisco-roomos",
            descr=(r"^SoftW: *(?P<version>RoomOS [^\r\n]+?) *$",),
            descr_optional=_CODEC_FIELDS,
        ),
        Rule(
            "ce",
            "cisco-roomos",
            descr=(r"^SoftW: *(?P<version>ce\d+(?:\.\d+){2,3})",),
            descr_optional=_CODEC_FIELDS,
        ),
        # MPP (3PCC) phones: "Cisco IP Phone CP-8851, V3, sip88xx.14-2-1MPP0001-272".
        Rule(
            "mpp",
            "cisco-mpp",
            descr=(r"^Cisco IP (?:Conference )?Phone (?P<model>CP-\w+)", r"(?P<version>sip\S+MPP\S*)"),
            version_format=_MPP_RELEASE,
        ),
        Rule(
            "mpp",
            "cisco-mpp",
            descr=(r"^Cisco IP (?:Conference )?Phone (?P<model>CP-\w+)",),
            entity_mfg=r"^Cisco",
            version_format=_MPP_RELEASE,
        ),
    ),
)
YEALINK = Vendor(
    "yealink",
    enterprises=("1.3.6.1.4.1.37459.",),
    rules=(
        # Teams/SIP phones run a Linux net-snmp (sysObjectID netSnmpAgentOIDs.linux): the name is the key.
        Rule("yealink", "yealink", descr=(r"^Yealink (?P<model>[A-Z]+\d+\w*)",)),
        Rule("yealink", "yealink", entity_mfg=r"^Yealink"),
    ),
)
POLY = Vendor(
    "poly",
    enterprises=("1.3.6.1.4.1.13885.",),  # Polycom
    rules=(
        Rule("poly", "poly", descr=(r"^Poly(?:com)? (?P<model>(?:CCX|VVX|Trio|Edge \w) ?\d+\w*)",)),
        Rule("poly", "poly", entity_mfg=r"^Poly(?:com)?\b"),
    ),
)
VENDORS: tuple[Vendor, ...] = (CISCO, YEALINK, POLY)

_COMPILED: dict[str, re.Pattern[str]] = {}


def _pattern(regex: str) -> re.Pattern[str]:
    pattern = _COMPILED.get(regex)
    if pattern is None:
        pattern = _COMPILED[regex] = re.compile(regex, _FLAGS)
    return pattern


def _match(
    rule: Rule, sys_descr: str, sys_object_id: str, entity: Mapping[str, str]
) -> dict[str, str] | None:
    if rule.object_id_prefix is not None and not sys_object_id.startswith(rule.object_id_prefix):
        return None
    if rule.entity_mfg is not None and not _pattern(rule.entity_mfg).search(
        entity.get("entPhysicalMfgName", "")
    ):
        return None
    groups: dict[str, str] = {}
    for regex in rule.descr:
        found = _pattern(regex).search(sys_descr)
        if found is None:
            return None
        groups.update({k: v for k, v in found.groupdict().items() if v})
    for regex in rule.descr_optional:
        found = _pattern(regex).search(sys_descr)
        if found is not None:
            groups.update({k: v for k, v in found.groupdict().items() if v and k not in groups})
    return groups


def _vendor_of(sys_object_id: str) -> str:
    oid = sys_object_id.lstrip(".") + "."
    for vendor in VENDORS:
        if any(oid.startswith(prefix) for prefix in vendor.enterprises):
            return vendor.name
    return UNKNOWN


def identify(sys_descr: str, sys_object_id: str, entity: Mapping[str, str] | None = None) -> Identification:
    """Identify a device from its sysDescr, sysObjectID and ENTITY-MIB chassis entry.

    ``entity`` maps ENTITY-MIB column names (``entPhysicalModelName`` …) to non-empty values;
    it is empty for devices without the table. Never raises on odd input.
    """
    entity = entity or {}
    for vendor in VENDORS:
        for number, rule in enumerate(vendor.rules):
            groups = _match(rule, sys_descr, sys_object_id, entity)
            if groups is None:
                continue
            version = groups.get("version") or next(
                (entity[col] for col in rule.entity_version if entity.get(col)), None
            )
            if version is not None and rule.version_format is not None:
                found = _pattern(rule.version_format).search(version)
                version = found["version"] if found else version
            return Identification(
                vendor=vendor.name,
                family=rule.family,
                model=groups.get("model") or entity.get("entPhysicalModelName") or rule.model or UNKNOWN,
                serial=groups.get("serial") or entity.get("entPhysicalSerialNum"),
                version=version,
                scheme=rule.scheme if version else None,
                rule=f"{vendor.name}[{number}]",
            )
    return Identification(vendor=_vendor_of(sys_object_id), serial=entity.get("entPhysicalSerialNum"))
