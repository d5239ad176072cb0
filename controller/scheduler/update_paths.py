"""How an update reaches a device, per firmware family: data, not code.

``manual`` where the vendor offers no update API, after shared/reference/vendor-update-paths.md §5:
the Teams Rooms app (Microsoft Store / Pro update rings only, §1.4), Android Teams devices (Teams
admin center UI only, §2), Webex Calling MPP phones (no firmware endpoint, §3.5) and on-premises
RoomOS without a reachable package host (``SoftwareUpgrade`` needs a URL, §4.2). ``automatic``
otherwise. The planner still plans manual updates into windows: someone does them there.
"""

from __future__ import annotations

from typing import Literal

Execution = Literal["automatic", "manual"]

# family → (execution, why). "package_host" marks families that are automatic only with a package host.
UPDATE_PATHS: dict[str, tuple[Execution, str]] = {
    "roomos": ("automatic", "xAPI SystemUnit SoftwareUpgrade from the customer's package host (§4.2)"),
    "ce": ("automatic", "xAPI SystemUnit SoftwareUpgrade from the customer's package host (§4.2)"),
    "tc": ("automatic", "xAPI SystemUnit SoftwareUpgrade from the customer's package host (§4.2)"),
    "mpp": ("manual", "Webex Calling phones: no API sets firmware, channel or schedule (§3.5)"),
    "teams-rooms": ("manual", "Teams Rooms app: Microsoft Store or Pro update rings only (§1.4)"),
    "teams-android": ("manual", "Android Teams devices: Teams admin center UI only (§2.3)"),
    "sip": ("automatic", "enterprise phone firmware: not a manual case of §5"),
    "spa": ("automatic", "not a manual case of §5"),
    "yealink": ("automatic", "not a manual case of §5"),
    "poly": ("automatic", "not a manual case of §5"),
}
NEEDS_PACKAGE_HOST = frozenset({"roomos", "ce", "tc"})


def execution_for(family: str, *, package_host: bool = True) -> tuple[Execution, str]:
    """(execution, why) for a family; unknown families are ``manual`` (nothing known to automate)."""
    if family in NEEDS_PACKAGE_HOST and not package_host:
        return "manual", "on-premises RoomOS without a package host: SoftwareUpgrade needs a URL (§4.2)"
    return UPDATE_PATHS.get(family, ("manual", f"no known update path for family {family!r}"))
