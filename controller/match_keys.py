"""What matching keys a device on: pure helpers of :mod:`controller.matching`.

An observation is compared with the stored device by what matching depends on (firmware, vendor,
model, matched components); the device and each matched component become devices of the
:class:`~firmware_catalog.Matcher`, a component as ``<pk>/<component>`` under the product the
advisories name it by.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from controller.storage.writer import UNKNOWN
from firmware_catalog import Device

if TYPE_CHECKING:
    from controller.storage.catalog_store import DeviceRecord

# Software components the catalog matches on their own, by version scheme: the product the
# advisories name it by. The Teams Rooms app is the same product on any maker's hardware (the
# device's own vendor and model are the hardware's), so it is matched as Microsoft's product,
# beside the device's firmware. A component of another scheme (a Windows build, a peripheral's
# firmware) is stored and shown, not matched: no advisory source of ours names it.
COMPONENT_PRODUCTS: dict[str, tuple[str, str]] = {
    "teams-rooms": ("Microsoft", "Microsoft Teams Rooms on Windows"),
    "teams-android": ("Microsoft", "Microsoft Teams Rooms on Android"),
}
FIRMWARE = "firmware"  # findings about the device's firmware name this component


Components = tuple[tuple[str, str, str | None], ...]
# firmware, vendor, model, family and matched components as an observation reported them
Seen = tuple[str | None, str, str, str, Components]
# Pending for different reasons (several firmware versions, say): recomputed whatever it read.
CHANGED: Seen = ("", "", "", "", ())


def matched(software: Components) -> Components:
    """The components of ``software`` the catalog matches (see :data:`COMPONENT_PRODUCTS`)."""
    if not software:
        return ()
    return _matched(software)


# Called for every observation ingested (800,000 in a bench run) with the few component lists a
# fleet reports: a cache hit costs the tuple's hash, the generator below three times as much.
@lru_cache(maxsize=4096)
def _matched(software: Components) -> Components:
    return tuple(c for c in software if c[2] in COMPONENT_PRODUCTS and c[0] != FIRMWARE)


def queue_key(pending: dict[tuple[str, str], Seen | None], key: tuple[str, str], seen: Seen | None) -> None:
    """Queue ``key`` as ``seen``; queued already for another reason, it becomes :data:`CHANGED`."""
    pending[key] = seen if pending.get(key, seen) == seen else CHANGED


def differs(record: DeviceRecord | None, seen: Seen) -> bool:
    """Whether an observation reporting ``seen`` changes what the device is matched on."""
    if record is None:
        return True
    firmware, vendor, model, family, components = seen
    # An unknown vendor, model or family (a device-down observation) leaves the stored one as it
    # is. The family counts: matching uses the reported family first (a codec first seen as
    # "telepresence", later as "roomos", is matched in another train). Tuples, not
    # sets, and a generator only for components: this runs for every observation ingested, and
    # set literals and a generator per call took four times as long.
    if (
        (firmware is not None and firmware != record.firmware_version)
        or vendor not in (record.vendor, UNKNOWN)
        or model not in (record.model, UNKNOWN)
        or family not in (record.family, UNKNOWN)
    ):
        return True
    stored = record.components
    return bool(components) and any(component not in stored for component in components)


def as_device(record: DeviceRecord) -> Device:
    # The reported family first (its scheme follows from the vocabulary); "unknown" is no family.
    family = record.family if record.family and record.family != "unknown" else None
    return Device(str(record.pk), record.vendor, record.model, record.firmware_version or "", family)


def component_devices(record: DeviceRecord) -> list[Device]:
    """The device's matched components as devices of the matcher: ``<pk>/<component>``, the
    product the catalog names it by, and the component's version."""
    return [
        Device(f"{record.pk}/{name}", *COMPONENT_PRODUCTS[scheme], version)
        for name, version, scheme in matched(record.components)
        if scheme is not None
    ]


def matcher_pk(matcher_id: str) -> int:
    """The device's primary key of a matcher id (``<pk>`` or ``<pk>/<component>``)."""
    return int(matcher_id.split("/", 1)[0])


def planned_software(
    firmware: str | None, vendor: str, model: str, family: str | None, components: Components
) -> tuple[str, str, str, str | None]:
    """(vendor, product, version, family) of what an update campaign plans and verifies for a
    device: its firmware, or, for a device that reports none (a Teams Rooms PC, whose firmware is
    Windows), the first component the catalog matches on its own (the Teams Rooms app), named as
    the catalog names it. The planner and the runner use this one rule, so a job planned for the
    app is verified by the app version the device reports afterwards."""
    if firmware:
        return vendor, model, firmware, family if family and family != UNKNOWN else None
    for _name, version, scheme in matched(components):
        if scheme is not None:
            product_vendor, product = COMPONENT_PRODUCTS[scheme]
            return product_vendor, product, version, scheme
    return vendor, model, "", family if family and family != UNKNOWN else None
