"""The planner against the real advisories of the shared catalog and generated contracts."""

# ruff: noqa: DTZ001 - naive datetimes here are local date-times on purpose (RFC 5545 §3.3.5)

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import cache

from hypothesis import event, given, settings
from hypothesis import strategies as st

from controller.scheduler import (
    Approval,
    CustomerPolicy,
    InventoryDevice,
    MaintenanceWindow,
    Planner,
    PublicHolidays,
    WorkingHours,
    in_working_hours,
    next_windows,
    parse_duration,
    zone,
)
from firmware_catalog import Catalog, Matcher, ReleaseCatalog, TargetSelector, parse_kev
from tests.catalog.conftest import CATALOG_DATA, CSAF_DIR, KEV_FILE


@cache
def _matcher() -> Matcher:
    catalog = Catalog()
    report = catalog.import_path(CSAF_DIR)
    assert not report.errors
    catalog.set_kev(parse_kev(KEV_FILE.read_bytes(), str(KEV_FILE)))
    return Matcher(catalog)


@cache
def _fleet() -> tuple[dict[str, str], ...]:
    return tuple(json.loads((CATALOG_DATA / "inventory.json").read_text(encoding="utf-8")))


@cache
def _calendar(code: str) -> PublicHolidays:
    return PublicHolidays(code)


def _selector(targets: dict[str, str] | None = None) -> TargetSelector:
    return TargetSelector(_matcher(), ReleaseCatalog.seed(), targets)


def _policy(customer: str, tz: str, code: str, **kw: object) -> CustomerPolicy:
    return CustomerPolicy(
        customer,
        zone(tz),
        _calendar(code),
        WorkingHours.parse("Mon-Fri 08:00-17:00"),
        **kw,  # type: ignore[arg-type]
    )


def _devices(customer: str = "acme", site: str = "hq") -> list[InventoryDevice]:
    return [InventoryDevice(**d, customer=customer, site=site) for d in _fleet()]


def _weekly(customer: str = "acme", tz: str = "Europe/Vienna", **kw: object) -> MaintenanceWindow:
    return MaintenanceWindow(
        customer,
        datetime(2026, 1, 6, 22, 0),
        "FREQ=WEEKLY;BYDAY=TU",
        parse_duration("PT3H"),
        zone(tz),
        **kw,  # type: ignore[arg-type]
    )


NOW = datetime(2026, 5, 4, 9, 0, tzinfo=zone("Europe/Vienna"))


def test_examples_of_every_hold_reason_and_both_classes() -> None:
    devices = _devices()
    devices[5] = replace(devices[5], in_scope=False)
    policy = _policy("acme", "Europe/Vienna", "AT")
    jobs = Planner([_weekly()], {"acme": policy}, _selector(), now=NOW, canary=0).plan(devices)
    assert [j.device_id for j in jobs] == [d.device_id for d in devices]
    codes = {j.reason_code for j in jobs}
    assert {"scheduled", "up_to_date", "out_of_scope", "no_approval", "unknown_version", "no_target"} <= codes
    by_id = {j.device_id: j for j in jobs}
    assert by_id[devices[5].device_id].reason_code == "out_of_scope"
    security = [j for j in jobs if j.update_class == "security" and j.action == "update"]
    assert security
    for job in security:
        assert job.start is not None
        assert job.start.isoformat() == "2026-05-05T22:00:00+02:00"
        assert job.end is not None
        assert job.end.isoformat() == "2026-05-06T01:00:00+02:00"
        assert job.wave == 1
        assert job.execution == "automatic"
        assert job.notice_at == datetime(2026, 5, 4, 17, 0, tzinfo=zone("Europe/Vienna"))
        assert job.approved_by is None


def test_feature_update_uses_the_first_window_its_approval_covers() -> None:
    devices = _devices()
    policy = _policy("acme", "Europe/Vienna", "AT")
    plain = Planner([_weekly()], {"acme": policy}, _selector(), now=NOW, canary=0).plan(devices)
    feature = next(j for j in plain if j.reason_code == "no_approval")
    device = next(d for d in devices if d.device_id == feature.device_id)
    family = _selector().choose(device.as_device()).family
    assert family is not None
    assert feature.target is not None
    approval = Approval(
        family, feature.target, "Maria Huber", datetime(2026, 5, 10, tzinfo=UTC), date(2026, 5, 26)
    )
    approved = replace(policy, approvals=(approval,))
    (job,) = Planner([_weekly()], {"acme": approved}, _selector(), now=NOW, canary=0).plan([device])
    assert job.action == "update"
    assert job.update_class == "feature"
    assert job.approved_by == "Maria Huber"
    assert job.start is not None
    assert job.start.date() == date(2026, 5, 12)  # the 5 May window precedes the approval
    expired = replace(approval, expires=date(2026, 5, 11))
    (held,) = Planner(
        [_weekly()], {"acme": replace(policy, approvals=(expired,))}, _selector(), now=NOW, canary=0
    ).plan([device])
    assert held.reason_code == "no_approval"


def test_operator_target_and_canary_waves() -> None:
    devices = [d for d in _devices() if d.software_version.lower().startswith("roomos")]
    policy = _policy("acme", "Europe/Vienna", "AT", security_min_cvss=0.0)
    selector = _selector({"roomos": "26.2.2.2"})
    jobs = Planner([_weekly()], {"acme": policy}, selector, now=NOW, canary=1).plan(devices)
    updates = [j for j in jobs if j.action == "update"]
    assert updates
    assert all(j.target == "26.2.2.2" and j.target_rule == "operator" for j in updates)
    assert [j.wave for j in updates][:2] == [1, 2]
    first_end = updates[0].end
    assert first_end is not None
    assert all(j.start is not None and j.start >= first_end for j in updates[1:])


def test_no_window_when_the_notice_would_be_too_late() -> None:
    device = next(d for d in _devices() if d.device_id == "fw-d02")
    policy = _policy("acme", "Europe/Vienna", "AT", security_min_cvss=0.0)
    # Window Tue 22:00, now Mon 17:30: the Monday notice slot has passed, so next Tuesday it is.
    late = datetime(2026, 5, 4, 17, 30, tzinfo=zone("Europe/Vienna"))
    (job,) = Planner([_weekly()], {"acme": policy}, _selector(), now=late, canary=0).plan([device])
    assert job.start is not None
    assert job.start.date() == date(2026, 5, 12)
    (none,) = Planner([], {"acme": policy}, _selector(), now=late).plan([device])
    assert none.reason_code == "no_window"
    (short,) = Planner([_weekly()], {"acme": policy}, _selector(), now=late, horizon_days=7).plan([device])
    assert short.reason_code == "no_window"


def test_manual_execution_by_family_and_package_host() -> None:
    devices = [d for d in _devices() if d.software_version.lower().startswith("roomos")]
    policy = _policy("acme", "Europe/Vienna", "AT", security_min_cvss=0.0)
    jobs = Planner(
        [_weekly()], {"acme": policy}, _selector(), now=NOW, canary=0, package_host={"acme": False}
    ).plan(devices)
    assert {j.execution for j in jobs if j.action == "update"} == {"manual"}


# -- properties ----------------------------------------------------------------------------------
CUSTOMERS = {
    "acme": ("Europe/Vienna", "AT"),
    "globex": ("America/New_York", "US"),
    "initech": ("Australia/Sydney", "AU"),
}
SITES = ["s1", "s2", "s3"]
RULES = ["FREQ=DAILY", "FREQ=WEEKLY;BYDAY=SA,SU", "FREQ=WEEKLY;BYDAY=TU", "FREQ=MONTHLY;BYDAY=1SU"]


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[MaintenanceWindow], dict[str, CustomerPolicy], list[InventoryDevice], datetime, int]:
    now = draw(st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)))
    windows = []
    for _ in range(draw(st.integers(0, 5))):
        customer = draw(st.sampled_from(sorted(CUSTOMERS)))
        tz = draw(st.sampled_from([CUSTOMERS[customer][0], "Europe/London", "America/Santiago"]))
        sites = draw(st.none() | st.frozensets(st.sampled_from(SITES), min_size=1))
        start = draw(st.datetimes(datetime(2024, 6, 1), datetime(2027, 12, 31))).replace(
            second=0, microsecond=0
        )
        windows.append(
            MaintenanceWindow(
                customer,
                start,
                draw(st.sampled_from(RULES)),
                parse_duration(f"PT{draw(st.integers(15, 600))}M"),
                zone(tz),
                sites=sites,
                exclude_holidays=draw(st.booleans()),
                blackout=draw(st.frozensets(st.dates(date(2025, 1, 1), date(2028, 3, 31)), max_size=15)),
            )
        )
    devices = []
    for raw in _fleet():
        devices.append(
            InventoryDevice(
                **raw,
                customer=draw(st.sampled_from(sorted(CUSTOMERS))),
                site=draw(st.sampled_from(SITES)),
                in_scope=draw(st.booleans()),
            )
        )
    selector = _selector()
    pairs = sorted(
        {
            (c.family, c.target_text)
            for d in devices
            if (c := selector.choose(d.as_device())).family and c.target_text
        }
    )
    policies = {}
    for customer, (tz, code) in CUSTOMERS.items():
        approvals = []
        for family, version in draw(st.lists(st.sampled_from(pairs), max_size=6)) if pairs else []:
            at = now + timedelta(days=draw(st.integers(-60, 20)))
            expires = draw(st.none() | st.integers(-5, 90).map(lambda d: now.date() + timedelta(days=d)))
            approvals.append(Approval(family, version, "someone", at, expires))
        policies[customer] = CustomerPolicy(
            customer,
            zone(tz),
            _calendar(code),
            WorkingHours.parse(draw(st.sampled_from(["Mon-Fri 08:00-17:00", "Tue-Thu 10:00-11:00"]))),
            security_min_cvss=draw(st.sampled_from([0.0, 5.0, 7.0, 10.0])),
            notice_lead=parse_duration(draw(st.sampled_from(["P1D", "PT2H", "P3D"]))),
            approvals=tuple(approvals),
        )
    return windows, policies, devices, now, draw(st.integers(0, 3))


@settings(max_examples=60)
@given(scenarios())
def test_plans_keep_the_contract(
    case: tuple[list[MaintenanceWindow], dict[str, CustomerPolicy], list[InventoryDevice], datetime, int],
) -> None:
    windows, policies, devices, now, canary = case
    selector = _selector()
    jobs = Planner(windows, policies, selector, now=now, canary=canary).plan(devices)
    assert [j.device_id for j in jobs] == [d.device_id for d in devices]
    for kind in sorted({f"{j.update_class}:{j.reason_code}" for j in jobs}):
        event(kind)
    for device, job in zip(devices, jobs, strict=True):
        policy = policies[device.customer]
        if not device.in_scope:
            assert job.action == "hold"
            assert job.reason_code == "out_of_scope"
            continue
        if job.action == "hold":
            assert job.start is None
            assert job.execution is None
            assert job.reason_code != "no_approval" or job.update_class == "feature"
            continue
        assert job.start is not None
        assert job.end is not None
        assert job.notice_at is not None
        # Inside a usable window of the device's customer and site, on a date that is not excluded.
        assert now <= job.start <= now + timedelta(days=60)
        matches = [
            w
            for w in windows
            if w.applies_to(device.customer, device.site)
            and [(o.start, o.end) for o in next_windows(w, job.start, 1, holidays=policy.holidays)]
            == [(job.start, job.end)]
        ]
        assert matches, f"{job} is in no window of {device.customer}/{device.site}"
        # The notice goes out inside working hours, not in the past, at least notice_lead ahead.
        assert in_working_hours(policy, job.notice_at)
        assert now <= job.notice_at <= job.start - policy.notice_lead.elapsed()
        if job.update_class == "feature":
            family = selector.choose(device.as_device()).family
            assert job.approved_by is not None
            assert any(
                a.family == family and a.version == job.target and a.valid_at(job.start, policy.timezone)
                for a in policy.approvals
            )
        else:
            assert job.update_class == "security"
            assert job.approved_by is None
    # Security updates never wait for an approval: without any approval their plan is the same.
    bare = {c: replace(p, approvals=()) for c, p in policies.items()}
    again = Planner(windows, bare, _selector(), now=now, canary=canary).plan(devices)
    for job, other in zip(jobs, again, strict=True):
        if job.update_class == "security" and job.action == "update" and canary == 0:
            assert other == job


def test_a_device_without_a_reported_version_says_so() -> None:
    silent = InventoryDevice("s1", "unknown", "unknown", "", "acme", "hq")
    policy = _policy("acme", "Europe/Vienna", "AT")
    (job,) = Planner([_weekly()], {"acme": policy}, _selector(), now=NOW, canary=0).plan([silent])
    assert job.reason_code == "unknown_version"
    assert "no firmware version reported" in job.reason


def test_a_reported_family_places_a_phone_the_product_name_does_not() -> None:
    # The demo's Webex Calling phones report "Cisco 8845" / "14-2-1MPP" and family "mpp" (the Webex
    # driver): the controller's plan held them as unknown_version because it dropped the family.
    policy = _policy("acme", "Europe/Vienna", "AT", security_min_cvss=0.0)
    phone = InventoryDevice("webex-1", "cisco", "Cisco 8845", "14-2-1MPP", "acme", "hq")
    planner = Planner([_weekly()], {"acme": policy}, _selector(), now=NOW, canary=0)
    (unplaced,) = planner.plan([phone])
    assert unplaced.reason_code == "unknown_version"
    (placed,) = planner.plan([replace(phone, family="mpp")])
    assert placed.reason_code != "unknown_version", placed.reason


def test_a_known_family_without_a_version_says_none_was_reported() -> None:
    # After the family was passed on, an Intune device with no version yet read
    # "software version '' cannot be parsed: empty string".
    policy = _policy("acme", "Europe/Vienna", "AT")
    room = InventoryDevice("intune-1", "lenovo", "ThinkSmart Core", "", "acme", "hq", family="teams-rooms")
    (held,) = Planner([_weekly()], {"acme": policy}, _selector(), now=NOW, canary=0).plan([room])
    assert (held.reason_code, held.reason) == ("unknown_version", "no firmware version reported yet")
