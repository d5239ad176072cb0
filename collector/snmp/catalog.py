"""Fingerprint files: which sysDescr, sysObjectID and ENTITY-MIB values name which device.

Knowledge about devices is data: ``collector/snmp/fingerprints/<vendor>.toml`` holds one vendor's
enterprise numbers, the names it goes by, and its fingerprints. A fingerprint sets conditions
(regexes over the whitespace-normalised sysDescr, a sysObjectID prefix, a regex over the ENTITY-MIB
manufacturer) and fixed values; named groups ``model``, ``version``, ``build`` and ``serial``
fill the rest. Every fingerprint carries real examples, each with the public source where the string
was seen; the tests run every example. Files are validated at load: a typo is an error, not a
silently dead rule.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from firmware_catalog import vocabulary

CAPTURES = frozenset({"model", "version", "build", "serial"})
ENTITY_COLUMNS = frozenset(
    {
        "entPhysicalDescr",
        "entPhysicalName",
        "entPhysicalHardwareRev",
        "entPhysicalFirmwareRev",
        "entPhysicalSoftwareRev",
        "entPhysicalSerialNum",
        "entPhysicalMfgName",
        "entPhysicalModelName",
    }
)
_OID = r"^\d+(?:\.\d+)*\.?$"
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]


def normalise(text: str) -> str:
    """Collapse every run of whitespace (line breaks included) to one space and trim: a codec's
    multi-line sysDescr reads the same whether the lines arrived as lines or as spaces."""
    return " ".join(text.split())


def _compile(regex: str, what: str) -> re.Pattern[str]:
    try:
        pattern = re.compile(regex)
    except re.error as err:
        raise ValueError(f"{what}: {regex!r} is not a valid regex: {err}") from err
    unknown = set(pattern.groupindex) - CAPTURES
    if unknown:
        raise ValueError(f"{what}: unknown named group(s) {sorted(unknown)}; known: {sorted(CAPTURES)}")
    return pattern


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(_Strict):
    """What an example must yield. A field left out is not checked; ``""`` means "must be absent"."""

    vendor: str | None = None
    family: str | None = None
    model: str | None = None
    version: str | None = None
    build: str | None = None
    serial: str | None = None
    scheme: str | None = None


class Example(_Strict):
    descr: str = ""
    object_id: Annotated[str, StringConstraints(pattern=r"^(?:\d+(?:\.\d+)*)?$")] = ""
    entity: dict[str, str] = Field(default_factory=dict)
    expect: Expect
    # Where the string was seen: "owner/repo path" or a URL.
    source: Annotated[str, StringConstraints(min_length=8)]

    @field_validator("entity")
    @classmethod
    def _entity_columns(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - ENTITY_COLUMNS
        if unknown:
            raise ValueError(f"unknown ENTITY-MIB column(s) {sorted(unknown)}")
        return value


class Fingerprint(_Strict):
    id: Name
    family: Name
    # Family and scheme are names from firmware_catalog.vocabulary, checked at load: what the
    # driver reports, the catalog can parse.
    scheme: Name
    description: str = ""
    # Every regex must match the normalised sysDescr (re.search).
    descr: tuple[str, ...] = ()
    # Searched when present, never required: named groups fill fields the required ones left.
    descr_optional: tuple[str, ...] = ()
    object_id: Annotated[str, StringConstraints(pattern=_OID)] | None = None
    entity_mfg: str | None = None
    model: str | None = None
    # Which ENTITY-MIB revision columns carry the firmware when sysDescr does not.
    entity_version: tuple[str, ...] = ("entPhysicalSoftwareRev", "entPhysicalFirmwareRev")
    # Searched in the version found: its ``version`` group is the release the catalog parses.
    version_format: str | None = None
    examples: list[Example] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Fingerprint:
        wrong = vocabulary.problem(self.family, self.scheme)
        if wrong is not None:
            raise ValueError(f"fingerprint {self.id!r}: {wrong}")
        if not (self.descr or self.object_id or self.entity_mfg):
            raise ValueError(f"fingerprint {self.id!r} matches everything; give it a condition")
        for regex in (*self.descr, *self.descr_optional):
            _compile(regex, f"fingerprint {self.id!r}")
        if self.entity_mfg is not None:
            _compile(self.entity_mfg, f"fingerprint {self.id!r} entity_mfg")
        if (
            self.version_format is not None
            and "version" not in _compile(self.version_format, f"fingerprint {self.id!r}").groupindex
        ):
            raise ValueError(f"fingerprint {self.id!r}: version_format needs a (?P<version>…) group")
        unknown = set(self.entity_version) - ENTITY_COLUMNS
        if unknown:
            raise ValueError(f"fingerprint {self.id!r}: unknown entity_version column(s) {sorted(unknown)}")
        return self


class VendorFile(_Strict):
    vendor: Name
    # Enterprise subtrees (SNMPv2-SMI enterprises.N) that belong to the vendor.
    enterprises: dict[Annotated[str, StringConstraints(pattern=r"^\d+$")], str] = Field(default_factory=dict)
    # Case-insensitive regexes for the names the vendor goes by in text ("Polycom", "TANDBERG").
    names: tuple[str, ...] = Field(min_length=1)
    # Lower runs first. In-scope vendors (those the fleet runs on) come after the ones they
    # must never swallow only where a pattern could overlap; otherwise order does not matter.
    priority: int = 100
    in_scope: bool = False
    # An SNMP agent many makers ship (net-snmp, Windows): its enterprise number names no device vendor.
    agent: bool = False
    fingerprints: list[Fingerprint] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> VendorFile:
        ids = [f.id for f in self.fingerprints]
        duplicates = {i for i in ids if ids.count(i) > 1}
        if duplicates:
            raise ValueError(f"vendor {self.vendor!r}: duplicate fingerprint id(s) {sorted(duplicates)}")
        for regex in self.names:
            re.compile(regex)
        return self


class Catalog:
    """All vendor files, in matching order, with compiled patterns."""

    def __init__(self, vendors: list[VendorFile]) -> None:
        self.vendors = sorted(vendors, key=lambda v: (v.priority, v.vendor))
        self.enterprises: dict[str, tuple[str, str]] = {}
        for vendor in self.vendors:
            for number, label in vendor.enterprises.items():
                if number in self.enterprises:
                    raise ValueError(
                        f"enterprise {number} claimed by {self.enterprises[number][0]} and {vendor.vendor}"
                    )
                owner = "unknown" if vendor.agent else vendor.vendor
                self.enterprises[number] = (owner, label)
        self._compiled: dict[str, re.Pattern[str]] = {}

    def pattern(self, regex: str) -> re.Pattern[str]:
        found = self._compiled.get(regex)
        if found is None:
            found = self._compiled[regex] = re.compile(regex)
        return found

    def enterprise_of(self, sys_object_id: str) -> tuple[str, str, str] | None:
        """``(number, vendor, label)`` for a sysObjectID under enterprises.N, else None. The vendor
        is ``unknown`` for a number no file lists, and for an agent's number (net-snmp)."""
        match = re.match(r"^\.?1\.3\.6\.1\.4\.1\.(\d+)(?:\.|$)", sys_object_id.strip())
        if match is None:
            return None
        number = match[1]
        vendor, label = self.enterprises.get(number, ("unknown", ""))
        return number, vendor, label


def parse_vendor_file(text: str, name: str) -> VendorFile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{name}: {err}") from err
    try:
        return VendorFile.model_validate(data)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from err


@cache
def load() -> Catalog:
    """Read and validate every ``fingerprints/*.toml`` shipped with the package (once)."""
    files = resources.files("collector.snmp.fingerprints")
    vendors = [
        parse_vendor_file(entry.read_text(encoding="utf-8"), entry.name)
        for entry in sorted(files.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".toml")
    ]
    return Catalog(vendors)
