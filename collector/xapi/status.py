"""What a RoomOS/CE status tree says, in our model. Pure functions, no I/O.

The tree is the same whether it came from the codec itself (``/status.xml``, parsed by
:mod:`collector.xapi.xml`) or through the Webex cloud (``GET /v1/xapi/status`` ``result``): nested
dicts named like the xAPI (``SystemUnit.Software.DisplayName``), multi-instance nodes as lists.
Names follow the RoomOS xAPI schema 26.4.1 (vendor-update-paths.md §4.3); values are strings or
numbers. Missing nodes are normal (older CE releases, restricted users): every function here
answers ``None`` or an empty list rather than raising.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from collector.model import HealthReason, Peripheral, Severity, SoftwareComponent

ROOMOS_SCHEME = "cisco-roomos"
MPP_SCHEME = "cisco-mpp"
# "RoomOS 11.17.1.7 2c3f1a9b0e4", "ce9.15.3.17 …", "ce11.17.1.7.2c3f1a9b0e4"
# The numbers end where the text ends, at a space, or at ".<build hash>" (which may start with digits).
_ROOMOS = re.compile(
    r"^(?:(?P<roomos>RoomOS)\s+|(?P<ce>ce|tc)\s?)(?P<nums>\d{1,6}(?:\.\d{1,6}){1,3})(?=$|\s|\.[0-9a-f]{7,}$)",
    re.IGNORECASE,
)
# "sip8845_65.14-2-1MPP0001-272", "sip88xx.14-2-1MPP": the release is the dashed triple.
_MPP = re.compile(r"^sip[\w]*\.(?P<rel>\d{1,4}-\d{1,4}-\d{1,6})(?P<msr>MSR\d+(?:-\d+)?)?MPP", re.IGNORECASE)
# Upgrade end states (Provisioning Software UpgradeStatus Status, schema 26.4.1).
UPGRADE_DONE = frozenset({"succeeded"})
UPGRADE_FAILED = frozenset({"failed", "installationfailed"})
_DIAG_SEVERITY = {"critical": Severity.CRITICAL, "error": Severity.CRITICAL, "warning": Severity.WARNING}


def node(tree: Any, *path: str) -> Any:
    """The value at ``path``, matching names case-insensitively; ``None`` if any step is missing."""
    for step in path:
        if not isinstance(tree, dict):
            return None
        key = next((k for k in tree if k.lower() == step.lower()), None)
        if key is None:
            return None
        tree = tree[key]
    return tree


def text(tree: Any, *path: str) -> str | None:
    value = node(tree, *path)
    if value is None or isinstance(value, dict | list):
        return None
    stripped = str(value).strip()
    return stripped or None


def instances(tree: Any, *path: str) -> list[dict[str, Any]]:
    value = node(tree, *path)
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class Firmware:
    version: str  # what the catalog parses: "RoomOS 11.17.1.7", "CE9.15.3.17", "14-2-1MPP"
    scheme: str | None
    family: str  # "roomos", "ce", "tc", "mpp", or "unknown"


def roomos_firmware(display: str) -> Firmware | None:
    """``RoomOS 11.17.1.7 2c3f1a9b0e4`` → ``RoomOS 11.17.1.7`` (family ``roomos``);
    ``ce9.15.3.17.abc`` → ``ce9.15.3.17`` (family ``ce``). The build hash is dropped: it takes
    no part in comparison (vendor-apis.md §3). ``None`` for anything else."""
    found = _ROOMOS.match(display.strip())
    if found is None:
        return None
    nums = found["nums"]
    major = int(nums.split(".")[0])
    if found["roomos"]:
        return Firmware(f"RoomOS {nums}", ROOMOS_SCHEME, "roomos")
    prefix = found["ce"].lower()
    family = "roomos" if major >= 10 else prefix
    return Firmware(f"{prefix}{nums}", ROOMOS_SCHEME, family)


def mpp_firmware(software: str) -> Firmware | None:
    """``sip8845_65.14-2-1MPP0001-272`` → ``14-2-1MPP`` (scheme ``cisco-mpp``)."""
    found = _MPP.match(software.strip())
    if found is None:
        return None
    return Firmware(f"{found['rel']}{found['msr'] or ''}MPP", MPP_SCHEME, "mpp")


def firmware(tree: Any) -> Firmware | None:
    """The codec's own firmware from ``SystemUnit.Software`` (DisplayName, else Version)."""
    for name in ("DisplayName", "Version"):
        value = text(tree, "SystemUnit", "Software", name)
        if value is not None and (found := roomos_firmware(value)) is not None:
            return found
    return None


@dataclass(frozen=True, slots=True)
class UpgradeState:
    status: str  # None, InProgress, Failed, InstallationFailed, Succeeded
    phase: str
    message: str
    version_id: str
    url: str

    @property
    def label(self) -> str:
        """One history entry: ``InProgress/Downloading``."""
        return self.status if self.phase in {"", "None"} else f"{self.status}/{self.phase}"

    @property
    def done(self) -> bool:
        return self.status.lower() in UPGRADE_DONE

    @property
    def failed(self) -> bool:
        return self.status.lower() in UPGRADE_FAILED


def upgrade_state(tree: Any) -> UpgradeState | None:
    status = node(tree, "Provisioning", "Software", "UpgradeStatus")
    if not isinstance(status, dict):
        return None
    return UpgradeState(
        status=text(status, "Status") or "None",
        phase=text(status, "Phase") or "None",
        message=text(status, "Message") or "",
        version_id=text(status, "VersionId") or "",
        url=text(status, "URL") or "",
    )


def uptime_s(tree: Any) -> float | None:
    value = text(tree, "SystemUnit", "Uptime")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def peripherals(tree: Any) -> list[Peripheral]:
    found = []
    for item in instances(tree, "Peripherals", "ConnectedDevice")[:256]:
        status = (text(item, "Status") or "").lower()
        found.append(
            Peripheral(
                kind=(text(item, "Type") or "unknown").lower()[:64],
                name=text(item, "Name"),
                serial=text(item, "SerialNumber"),
                software_version=text(item, "SoftwareInfo"),
                connected=(status == "connected") if status else None,
            )
        )
    return found


def peripheral_software(items: list[Peripheral]) -> list[SoftwareComponent]:
    """Each peripheral's firmware as its own component (``peripheral:touchpanel:FOC…``), so the
    catalog can match it like the codec's; scheme only where the string is a RoomOS version."""
    components: list[SoftwareComponent] = []
    for item in items:
        if not item.software_version:
            continue
        parsed = roomos_firmware(item.software_version)
        name = f"peripheral:{item.kind}:{item.serial or item.name or len(components)}"[:64]
        version = parsed.version if parsed else item.software_version
        components.append(
            SoftwareComponent(name=name, version=version, scheme=parsed.scheme if parsed else None)
        )
    return components


def diagnostics(tree: Any) -> list[HealthReason]:
    """``Diagnostics.Message[n]`` as health reasons; ``code`` is the message Type."""
    reasons = []
    for item in instances(tree, "Diagnostics", "Message")[:64]:
        level = (text(item, "Level") or "").lower()
        reasons.append(
            HealthReason(
                code=f"xapi_{(text(item, 'Type') or 'diagnostic').lower()}"[:64],
                message=(text(item, "Description") or text(item, "Type") or "diagnostic message")[:1024],
                severity=_DIAG_SEVERITY.get(level, Severity.INFO),
            )
        )
    return reasons
