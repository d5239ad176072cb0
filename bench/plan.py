"""Benchmark: `fernwart campaign plan` for 100,000 devices across 2,000 sites, beside `catalog match`.

    .venv/bin/python bench/plan.py [--devices 100000] [--sites 2000] [--customers 200] [--seed 1]

Writes a synthetic fleet (firmware strings from the shared inventory and the seed release lists),
one window per site (each site its own window and time zone), one policy per customer (a mix of
holiday calendars and approvals) into a temporary folder, then runs both commands as child
processes on the same inventory and prints wall time and peak RSS of each (from wait4), plus a
summary of the plan. The advisories and KEV excerpt come from ../shared/catalog (beside the repository).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "catalog"
ROOT = Path(__file__).resolve().parents[1]
ZONES = [
    ("Europe/Vienna", "AT"),
    ("Europe/Berlin", "DE-BY"),
    ("Europe/London", "GB"),
    ("America/New_York", "US-NY"),
    ("America/Chicago", "US"),
    ("America/Los_Angeles", "US-CA"),
    ("America/Sao_Paulo", "BR"),
    ("Asia/Kolkata", "IN"),
    ("Asia/Tokyo", "JP"),
    ("Australia/Sydney", "AU"),
    ("Pacific/Auckland", "NZ"),
    ("Europe/Zurich", "CH"),
]
RULES = ["FREQ=WEEKLY;BYDAY=TU", "FREQ=WEEKLY;BYDAY=SA,SU", "FREQ=DAILY", "FREQ=MONTHLY;BYDAY=1SU,3SU"]


def _fleet(devices: int, sites: int, customers: int, rng: random.Random) -> list[dict[str, object]]:
    base = json.loads((SHARED / "inventory.json").read_text(encoding="utf-8"))
    roomos = [
        e["version"]
        for e in json.loads((ROOT / "firmware_catalog/data/releases/cisco-roomos.json").read_text())
    ]
    models = list(base)
    fleet = []
    for index in range(devices):
        site = index % sites
        template = dict(rng.choice(models))
        if template["software_version"].startswith("RoomOS") and rng.random() < 0.5:
            template["software_version"] = f"RoomOS {rng.choice(roomos)} {rng.getrandbits(40):010x}"
        template["device_id"] = f"dev-{index:06d}"
        template["customer"] = f"cust-{site % customers:03d}"
        template["site"] = f"site-{site:04d}"
        if rng.random() < 0.03:
            template["in_scope"] = False
        fleet.append(template)
    return fleet


def _windows(sites: int, customers: int, rng: random.Random) -> str:
    lines = []
    for site in range(sites):
        tz, _code = ZONES[site % len(ZONES)]
        hour = rng.choice([1, 2, 3, 20, 22, 23])
        lines += [
            "[[windows]]",
            f'customer = "cust-{site % customers:03d}"',
            f'sites = ["site-{site:04d}"]',
            f"start = 2026-01-0{rng.randint(1, 7)}T{hour:02d}:{rng.choice([0, 30]):02d}:00",
            f'rrule = "{rng.choice(RULES)}"',
            f'duration = "PT{rng.choice([2, 3, 4])}H"',
            f'timezone = "{tz}"',
            f"blackout = [2026-05-{rng.randint(1, 28):02d}]",
            "",
        ]
    return "\n".join(lines)


def _policy(customers: int) -> str:
    lines = []
    for customer in range(customers):
        tz, code = ZONES[customer % len(ZONES)]
        lines += [
            f"[customers.cust-{customer:03d}]",
            f'timezone = "{tz}"',
            f'holidays = "{code}"',
            f"security_min_cvss = {[7.0, 5.0, 9.0][customer % 3]}",
            "",
            f"[[customers.cust-{customer:03d}.approvals]]",
            'family = "roomos"',
            'version = "11.27.5.0"',
            'approved_by = "bench"',
            "approved_at = 2026-04-01T09:00:00Z",
            "",
        ]
    return "\n".join(lines)


def _run(argv: list[str]) -> tuple[float, float, bytes]:
    """(wall seconds, peak RSS MiB, stdout) of one child process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE)
        _pid, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - start
        err = child.stderr.read() if child.stderr else b""
        child.stderr.close() if child.stderr else None
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            sys.stderr.write(err.decode(errors="replace")[-2000:])
            raise SystemExit(f"{argv[1:3]} exited {child.returncode}")
        out.seek(0)
        return elapsed, usage.ru_maxrss / 1024, out.read()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--sites", type=int, default=2_000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    fernwart = str(Path(sys.executable).with_name("fernwart"))
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        (tmp / "inventory.json").write_text(json.dumps(_fleet(args.devices, args.sites, args.customers, rng)))
        (tmp / "windows.toml").write_text(_windows(args.sites, args.customers, rng))
        (tmp / "policy.toml").write_text(_policy(args.customers))
        common = [
            "--advisories",
            str(SHARED / "csaf"),
            "--kev",
            str(SHARED / "kev/known_exploited_vulnerabilities.json"),
        ]
        match_s, match_rss, _ = _run(
            [fernwart, "catalog", "match", "--inventory", str(tmp / "inventory.json"), *common, "--json"]
        )
        plan_s, plan_rss, plan_out = _run(
            [
                fernwart, "campaign", "plan", "--inventory", str(tmp / "inventory.json"),
                "--windows", str(tmp / "windows.toml"), "--policy", str(tmp / "policy.toml"), *common,
                "--now", "2026-05-04T09:00:00+02:00", "--json",
            ]
        )  # fmt: skip
    jobs = json.loads(plan_out)
    codes = collections.Counter(f"{j['action']}:{j['update_class'] or '-'}:{j['reason_code']}" for j in jobs)
    print(
        f"devices {args.devices}, sites {args.sites} (one window and zone each), customers {args.customers}"
    )
    print(f"catalog match --json : {match_s:6.2f} s  peak RSS {match_rss:7.1f} MiB")
    print(
        f"campaign plan --json : {plan_s:6.2f} s  peak RSS {plan_rss:7.1f} MiB"
        f"  ({plan_s / match_s:.2f}x match)"
    )
    for code, count in sorted(codes.items()):
        print(f"  {code:40s} {count}")


if __name__ == "__main__":
    main()
