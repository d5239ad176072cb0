"""``fernwart campaign plan``: the offline planner (issue 15, item 7).

The same planning code as the controller, with no controller: reads an inventory, the windows and
policy files (TOML), CSAF advisories, an optional KEV feed and release list, and prints one job or
hold per device. Exit codes: 0 planned, 2 usage (bad arguments), 65 data error (EX_DATAERR: a bad
file; every problem at once, each naming its file and key path).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

from controller.scheduler import DataError, InventoryDevice, Planner, parse_policy, parse_windows
from controller.scheduler.planner import DEFAULT_CANARY, DEFAULT_HORIZON_DAYS
from fernwart_cli import exits
from fernwart_cli.api import add_client_arguments
from fernwart_cli.campaigns_online import plan_online, register_online
from fernwart_cli.jsonout import array_lines
from firmware_catalog import (
    Catalog,
    CatalogError,
    Matcher,
    ReleaseCatalog,
    TargetSelector,
    VersionParseError,
    parse_kev,
    parse_version,
)
from firmware_catalog.products import FAMILY_SCHEME


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("campaign", help="update campaigns: plan offline, or in the controller")
    commands = parser.add_subparsers(dest="campaign_command", required=True, metavar="SUBCOMMAND")
    plan = commands.add_parser(
        "plan", help="plan updates for an inventory, offline (what-if); or a stored campaign (--campaign ID)"
    )
    plan.add_argument(
        "--campaign", type=int, metavar="ID", help="plan this campaign in the controller instead"
    )
    plan.add_argument("--dry-run", action="store_true", help="with --campaign: show the plan, store nothing")
    add_client_arguments(plan)
    plan.add_argument("--inventory", type=Path, help="JSON array of devices")
    plan.add_argument("--windows", type=Path, help="maintenance windows (TOML)")
    plan.add_argument("--policy", type=Path, help="customer policies (TOML)")
    plan.add_argument("--advisories", type=Path, help="CSAF file or directory")
    plan.add_argument("--kev", type=Path, help="CISA KEV JSON feed")
    plan.add_argument("--releases", type=Path, help="release list (JSON), added to the shipped seed")
    plan.add_argument(
        "--target", action="append", default=[], metavar="FAMILY=VERSION", help="operator's target per family"
    )
    plan.add_argument(
        "--canary",
        type=int,
        default=DEFAULT_CANARY,
        help=f"devices in the canary wave (default {DEFAULT_CANARY}; 0: one wave)",
    )
    plan.add_argument("--horizon-days", type=int, default=DEFAULT_HORIZON_DAYS)
    plan.add_argument("--now", help="ISO 8601 date-time with offset, e.g. 2026-05-04T09:00+02:00")
    plan.add_argument("--json", action="store_true", help="print the plan as a JSON array")
    plan.set_defaults(func=run_plan)
    register_online(commands)


def _error(message: str) -> None:
    sys.stderr.write(f"fernwart campaign: {message}\n")


def _usage(args: argparse.Namespace) -> tuple[datetime, dict[str, str]] | list[str]:  # noqa: C901 - one check per argument
    problems: list[str] = []
    now: datetime | None = None
    try:
        now = datetime.fromisoformat(args.now)
    except ValueError:
        problems.append(f"--now: expected an ISO 8601 date-time, got {args.now!r}")
    if now is not None and now.tzinfo is None:
        problems.append(f"--now: give a UTC offset ({args.now}+02:00 or {args.now}Z)")
    if args.canary < 0:
        problems.append("--canary: must be 0 or more")
    if args.horizon_days < 0:
        problems.append("--horizon-days: must be 0 or more")
    targets: dict[str, str] = {}
    for item in args.target:
        family, sep, version = item.partition("=")
        family, version = family.strip().lower(), version.strip()
        scheme = FAMILY_SCHEME.get(family)
        if not sep or not version:
            problems.append(f"--target {item!r}: expected FAMILY=VERSION")
        elif scheme is None:
            problems.append(f"--target {item!r}: unknown family; known: {', '.join(sorted(FAMILY_SCHEME))}")
        elif family in targets:
            problems.append(f"--target {item!r}: {family} given twice")
        else:
            try:
                parse_version(scheme, version)
            except VersionParseError as err:
                problems.append(f"--target {item!r}: {err.reason}")
            targets[family] = version
    if problems or now is None:
        return problems
    return now, targets


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DataError([f"{path}: cannot read: {err.strerror or err}"]) from None
    except UnicodeDecodeError as err:
        raise DataError([f"{path}: not UTF-8: {err.reason}"]) from None
    except tomllib.TOMLDecodeError as err:
        raise DataError([f"{path}: TOML syntax error: {err}"]) from None


_KEYS = frozenset({"device_id", "vendor", "product", "software_version", "customer", "site", "in_scope"})


def _plain_record(item: object) -> bool:
    """The fast path: a record with nothing to report (the slow path below names every problem)."""
    return (
        isinstance(item, dict)
        and isinstance(item.get("device_id"), str)
        and isinstance(item.get("customer"), str)
        and isinstance(item.get("site"), str)
        and bool(item["device_id"] and item["customer"] and item["site"])
        and isinstance(item.get("vendor", ""), str)
        and isinstance(item.get("product", ""), str)
        and isinstance(item.get("software_version", ""), str)
        and isinstance(item.get("in_scope", True), bool)
        and _KEYS.issuperset(item)
    )


def read_inventory(path: Path) -> list[InventoryDevice]:
    """The inventory of ``fernwart catalog match`` plus ``customer``, ``site``, optional ``in_scope``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataError([f"{path}: cannot read a JSON array: {err}"]) from None
    if not isinstance(data, list):
        raise DataError([f"{path}: expected a JSON array of devices"])
    errors: list[str] = []
    devices: list[InventoryDevice] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        if _plain_record(item) and item["device_id"] not in seen:
            seen.add(item["device_id"])
            devices.append(
                InventoryDevice(
                    item["device_id"],
                    item.get("vendor", ""),
                    item.get("product", ""),
                    item.get("software_version", ""),
                    item["customer"],
                    item["site"],
                    item.get("in_scope", True),
                )
            )
            continue
        where = f"{path}: [{index}]"
        if not isinstance(item, dict):
            errors.append(f"{where}: expected an object")
            continue
        bad = [
            f"{where}.{key}: expected a non-empty string"
            for key in ("device_id", "customer", "site")
            if not isinstance(item.get(key), str) or not item[key]
        ]
        bad += [
            f"{where}.{key}: expected a string"
            for key in ("vendor", "product", "software_version")
            if not isinstance(item.get(key, ""), str)
        ]
        if not isinstance(item.get("in_scope", True), bool):
            bad.append(f"{where}.in_scope: expected true or false")
        bad += [f"{where}.{key}: unknown key" for key in sorted(set(item) - _KEYS)]
        if not bad:  # the record is fine; only its id was seen before
            bad.append(f"{where}.device_id: {item['device_id']!r} appears twice")
        errors += bad
    if errors:
        raise DataError(errors)
    return devices


def _load(  # noqa: C901 - one block per input file
    args: argparse.Namespace, targets: dict[str, str], now: datetime
) -> tuple[Planner, list[InventoryDevice]] | list[str]:
    """Read every input; all problems at once (a file that cannot be read stops only what needs it)."""
    errors: list[str] = []
    customers = None
    try:
        customers = parse_policy(_toml(args.policy))
    except DataError as err:
        errors += [
            line if line.startswith(str(args.policy)) else f"{args.policy}: {line}" for line in err.errors
        ]
    windows = []
    if customers is not None:
        try:
            windows = parse_windows(_toml(args.windows), customers)
        except DataError as err:
            errors += [
                line if line.startswith(str(args.windows)) else f"{args.windows}: {line}"
                for line in err.errors
            ]
    devices: list[InventoryDevice] = []
    try:
        devices = read_inventory(args.inventory)
    except DataError as err:
        errors += err.errors
    if customers is not None:
        errors += [
            f"{args.inventory}: [{i}].customer: {d.customer!r} has no "
            f"[customers.{d.customer}] in {args.policy}"
            for i, d in enumerate(devices)
            if d.customer not in customers
        ]
    catalog = Catalog()
    try:
        report = catalog.import_path(args.advisories)
        errors += [f"{err.document}: {err.path}: {err.reason}" for err in report.errors]
    except CatalogError as err:
        errors.append(f"{args.advisories}: {err}")
    if args.kev is not None:
        try:
            kev = parse_kev(args.kev.read_bytes(), str(args.kev))
            catalog.set_kev(kev)
            errors += [f"{args.kev}: {err}" for err in kev.errors]
        except (OSError, CatalogError) as err:
            errors.append(f"{args.kev}: {err}")
    releases = ReleaseCatalog.seed()
    if args.releases is not None:
        try:
            errors += releases.load_bytes(args.releases.read_bytes(), str(args.releases))
        except OSError as err:
            errors.append(f"{args.releases}: cannot read: {err.strerror or err}")
    if errors or customers is None:
        return errors
    selector = TargetSelector(Matcher(catalog), releases, targets)
    planner = Planner(
        windows,
        customers,
        selector,
        now=now,
        horizon_days=args.horizon_days,
        canary=args.canary,
        package_host=customers.package_host,
    )
    return planner, devices


_OFFLINE = ("inventory", "windows", "policy", "advisories", "now")


def run_plan(args: argparse.Namespace) -> int:
    if args.campaign is not None:
        return plan_online(args)
    missing = [f"--{name}" for name in _OFFLINE if getattr(args, name) is None]
    if missing or args.dry_run:
        _error(
            f"offline planning needs {', '.join(f'--{n}' for n in _OFFLINE)} (missing: {', '.join(missing)})"
        )
        if args.dry_run:
            _error("--dry-run goes with --campaign ID")
        return exits.USAGE
    checked = _usage(args)
    if isinstance(checked, list):
        for line in checked:
            _error(line)
        return exits.USAGE
    now, targets = checked
    loaded = _load(args, targets, now)
    if isinstance(loaded, list):
        for line in loaded:
            _error(line)
        return exits.DATAERR
    planner, devices = loaded
    jobs = planner.plan(devices)
    if args.json:
        sys.stdout.write(array_lines(job.to_dict() for job in jobs) + "\n")
        return exits.OK
    for job in jobs:
        when = f"{job.start.isoformat()}..{job.end.isoformat()}" if job.start and job.end else "-"
        sys.stdout.write(
            f"{job.device_id}\t{job.action}\t{job.update_class or '-'}\t{job.target or '-'}\t{when}\t"
            f"wave {job.wave or '-'}\t{job.execution or '-'}\t{job.reason_code}\t{job.reason}\n"
        )
    return exits.OK
