"""One vocabulary of device families and version schemes, shared by the drivers and the catalog.

A driver reports a ``family`` (the firmware line a device runs: ``roomos``, ``mpp``, ``poly`` …)
and a ``scheme`` (how to read its version strings). Both must be names from here: the SNMP
fingerprint files are validated against :data:`FAMILIES` and :data:`SCHEMES` at load, and the
catalog uses a reported family and scheme before its own product-name rules. A family the catalog
cannot parse is caught by a test, not in the field.

Pure: no I/O, and nothing of ours beyond :mod:`firmware_catalog.versions`.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_catalog.versions import SCHEMES as _SCHEME_CLASSES
from firmware_catalog.versions import Version, parse_version

SCHEMES: frozenset[str] = frozenset(_SCHEME_CLASSES)


@dataclass(frozen=True, slots=True)
class Family:
    """A firmware line: the scheme its versions parse in, and the kind of device that runs it."""

    scheme: str
    device_class: str | None  # "endpoint", "phone" or None (not a collaboration device)
    description: str


FAMILIES: dict[str, Family] = {
    # Cisco room devices: one numbering line from TC through CE to RoomOS.
    "roomos": Family("cisco-roomos", "endpoint", "Cisco RoomOS 10 and later"),
    "ce": Family("cisco-roomos", "endpoint", "Cisco Collaboration Endpoint software 8-9"),
    "tc": Family("cisco-roomos", "endpoint", "Cisco/TANDBERG TelePresence codec software (TC, TCNC)"),
    "telepresence": Family(
        "cisco-roomos", "endpoint", "Cisco/TANDBERG codec whose software train is unknown"
    ),
    # The trains before TC.
    "te": Family("tandberg", "endpoint", "TANDBERG/Cisco E20 software (TE)"),
    "f": Family("tandberg", "endpoint", "TANDBERG MXP series software (F)"),
    # Cisco phones and adapters.
    "sip": Family("cisco-phone", "phone", "Cisco enterprise phone firmware (SCCP or SIP loads)"),
    "mpp": Family("cisco-mpp", "phone", "Cisco Multiplatform (3PCC) phone firmware"),
    "spa": Family("generic", "phone", "Cisco Small Business SPA phones and analogue adapters"),
    "cisco-sb": Family("generic", None, "Cisco Small Business network devices (RV, WAP, SG)"),
    # Microsoft Teams devices.
    "teams-rooms": Family("teams-rooms", None, "Microsoft Teams Rooms app"),
    "teams-android": Family("teams-android", None, "Teams app on Android devices"),
    # One firmware line per vendor.
    "yealink": Family("yealink", None, "Yealink phone and room device firmware"),
    "poly": Family("poly", None, "Poly/Polycom UC software and device firmware"),
    # Other vendors on the same networks: identified as themselves, never matched as collaboration devices.
    "audiocodes": Family("generic", None, "AudioCodes gateways and SBCs"),
    "avaya": Family("generic", None, "Avaya (and Nortel) switches and call servers"),
    "crestron": Family("generic", None, "Crestron devices"),
    "grandstream": Family("generic", None, "Grandstream adapters and phones"),
    "routeros": Family("generic", None, "MikroTik RouterOS"),
    # The host driver: the agent's own machine.
    "linux": Family("kernel", None, "the agent host, Linux"),
    "darwin": Family("kernel", None, "the agent host, macOS"),
    "windows": Family("kernel", None, "the agent host, Windows"),
    "host": Family("kernel", None, "the agent host, another operating system"),
}


def parse(scheme: str, text: str) -> Version:
    """Parse ``text`` in ``scheme``; raises :class:`~firmware_catalog.errors.VersionParseError`."""
    return parse_version(scheme, text)


def scheme_of(family: str) -> str | None:
    """The scheme a family's versions parse in, or None for a family not in the vocabulary."""
    known = FAMILIES.get(family)
    return known.scheme if known else None


def problem(family: str, scheme: str | None) -> str | None:
    """Why a (family, scheme) pair a driver reports cannot be used, or None when it can.

    ``unknown`` is the honest family of a device nothing recognised: it has no scheme.
    """
    if family == "unknown":
        return None if scheme is None else f"family 'unknown' has no scheme, got {scheme!r}"
    known = FAMILIES.get(family)
    if known is None:
        return f"unknown family {family!r}; known: {', '.join(sorted(FAMILIES))}"
    if scheme is None:
        return None
    if scheme not in SCHEMES:
        return f"unknown version scheme {scheme!r}; known: {', '.join(sorted(SCHEMES))}"
    if scheme != known.scheme:
        return f"family {family!r} uses scheme {known.scheme!r}, not {scheme!r}"
    return None
