"""Update campaigns: maintenance windows, the contract as data, and the planner.

``windows``, ``policy``, ``planner`` and ``schema`` are pure (no I/O, no clock: ``now`` is an
argument); the async runner that executes plans comes later.
"""

from controller.scheduler.planner import InventoryDevice, PlannedJob, Planner
from controller.scheduler.policy import (
    Approval,
    Contact,
    CustomerPolicy,
    FaultRepairJob,
    PolicyError,
    WorkingHours,
    fault_repair_job,
    in_working_hours,
    notice_time,
    security_advisories,
    update_class,
)
from controller.scheduler.schema import DataError, parse_policy, parse_windows
from controller.scheduler.timeutil import Duration, PublicHolidays, parse_duration, resolve_local, zone
from controller.scheduler.update_paths import execution_for
from controller.scheduler.windows import MaintenanceWindow, Occurrence, next_windows

__all__ = [
    "Approval",
    "Contact",
    "CustomerPolicy",
    "DataError",
    "Duration",
    "FaultRepairJob",
    "InventoryDevice",
    "MaintenanceWindow",
    "Occurrence",
    "PlannedJob",
    "Planner",
    "PolicyError",
    "PublicHolidays",
    "WorkingHours",
    "execution_for",
    "fault_repair_job",
    "in_working_hours",
    "next_windows",
    "notice_time",
    "parse_duration",
    "parse_policy",
    "parse_windows",
    "resolve_local",
    "security_advisories",
    "update_class",
    "zone",
]
