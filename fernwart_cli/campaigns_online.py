"""``fernwart campaign create|list|show|approve|pause|resume|cancel|jobs|job`` and
``fernwart campaign plan --campaign ID --dry-run``: thin clients of the controller's REST API.

``plan --campaign ID --dry-run`` prints which devices would be updated when and why, and which
are held back and why; without ``--dry-run`` the plan is stored as the draft campaign's jobs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fernwart_cli import exits
from fernwart_cli.api import ApiError, add_client_arguments, call, run

PROG = "fernwart campaign"


def _out(args: argparse.Namespace, data: Any, lines: list[str]) -> int:
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write("".join(line + "\n" for line in lines))
    return exits.OK


def plan_online(args: argparse.Namespace) -> int:
    def work() -> int:
        params = {"dry_run": "true"} if args.dry_run else {}
        plan = json.loads(call(args, "POST", f"/api/v1/campaigns/{args.campaign}/plan", params=params))
        return _out(args, plan, plan_lines(plan))

    return run(PROG, work)


def plan_lines(plan: dict[str, Any]) -> list[str]:
    """For people: updates by window, then what is held back and why."""
    verb = "would update" if plan["dry_run"] else "planned"
    lines = [f"campaign {plan['campaign']}: {verb} {plan['updates']} device(s), {plan['held']} held back"]
    updates = sorted(
        (j for j in plan["jobs"] if j["action"] == "update"), key=lambda j: (j["start"], j["device_id"])
    )
    for job in updates:
        lines.append(
            f"  update {job['site_id']}/{job['device_id']}: {job['from_version'] or '?'} -> {job['target']} "
            f"[{job['update_class']}, {job['execution']}, wave {job['wave']}] "
            f"{job['start']} .. {job['end']} ({job['window']}); notice by {job['notice_at']}"
        )
        lines.append(f"      why: {job['reason']}")
    held = [j for j in plan["jobs"] if j["action"] == "hold"]
    return lines + [
        f"  hold   {j['site_id']}/{j['device_id']}: {j['reason_code']}: {j['reason']}" for j in held
    ]


def _targets(items: list[str]) -> dict[str, str]:
    targets = {}
    for item in items:
        family, sep, version = item.partition("=")
        if not sep or not family.strip() or not version.strip():
            raise ApiError(exits.USAGE, f"--target {item!r}: expected FAMILY=VERSION")
        targets[family.strip().lower()] = version.strip()
    return targets


def create(args: argparse.Namespace) -> int:
    def work() -> int:
        spec = {
            "name": args.name,
            "customer": args.customer,
            "targets": _targets(args.target),
            "selection": {
                "sites": args.site,
                "models": args.model,
                "findings": args.finding,
                "devices": args.device,
            },
            "canary": args.canary,
            "soak_s": args.soak_s,
            "per_site_concurrency": args.concurrency,
            "failure_threshold_pct": args.failure_pct,
            "failure_min_finished": args.failure_min,
            "success_threshold_pct": args.success_pct,
            "retries": args.retries,
        }
        row = json.loads(call(args, "POST", "/api/v1/campaigns", body=spec))
        return _out(args, row, [f"campaign {row['id']} created ({row['state']})"])

    return run(PROG, work)


def _campaign_line(c: dict[str, Any]) -> str:
    return f"{c['id']}\t{c['state']}\t{c['customer_id']}\t{c['name']}\t{c.get('state_reason') or ''}".rstrip()


def list_campaigns(args: argparse.Namespace) -> int:
    def work() -> int:
        items = json.loads(call(args, "GET", "/api/v1/campaigns"))["items"]
        return _out(args, items, [_campaign_line(c) for c in items])

    return run(PROG, work)


def show(args: argparse.Namespace) -> int:
    def work() -> int:
        row = json.loads(call(args, "GET", f"/api/v1/campaigns/{args.id}"))
        jobs = ", ".join(f"{state} {n}" for state, n in sorted(row["jobs"].items())) or "no jobs"
        return _out(
            args,
            row,
            [_campaign_line(row), f"  targets: {row['targets'] or 'catalog rule'}", f"  jobs: {jobs}"],
        )

    return run(PROG, work)


def act(args: argparse.Namespace) -> int:
    def work() -> int:
        row = json.loads(call(args, "POST", f"/api/v1/campaigns/{args.id}/{args.action}"))
        return _out(args, row, [_campaign_line(row)])

    return run(PROG, work)


def jobs(args: argparse.Namespace) -> int:
    def work() -> int:
        items = json.loads(call(args, "GET", f"/api/v1/campaigns/{args.id}/jobs"))["items"]
        lines = [
            f"{j['id']}\t{j['state']}\t{j['site_id']}/{j['device_id']}\twave {j['wave']}\t"
            f"{j['target'] or '-'}\t{j['window_start'] or '-'}\t{j['reason_code']}"
            for j in items
        ]
        return _out(args, items, lines)

    return run(PROG, work)


def job(args: argparse.Namespace) -> int:
    def work() -> int:
        row = json.loads(call(args, "GET", f"/api/v1/jobs/{args.id}"))
        lines = [f"job {row['id']} {row['site_id']}/{row['device_id']}: {row['state']}"]
        lines += [f"  {h['at']}\t{h['state']}\t{h['detail']}" for h in row["history"]]
        return _out(args, row, lines)

    return run(PROG, work)


def register_online(commands: Any) -> None:
    """Adds the controller subcommands beside the offline ``plan``."""

    def sub(name: str, helptext: str, func: Any, *, with_id: bool = False) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=helptext)
        add_client_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print the controller's answer as JSON")
        if with_id:
            parser.add_argument("id", type=int)
        parser.set_defaults(func=func)
        return parser

    made = sub("create", "create a draft campaign in the controller", create)
    made.add_argument("--name", required=True)
    made.add_argument("--customer", required=True)
    made.add_argument("--target", action="append", default=[], metavar="FAMILY=VERSION")
    for flag in ("--site", "--model", "--finding", "--device"):
        made.add_argument(flag, action="append", default=[], help="narrow the selection (repeatable)")
    made.add_argument("--canary", type=int, default=1)
    made.add_argument("--soak-s", type=int, default=3600)
    made.add_argument("--concurrency", type=int, default=5, help="jobs in flight per site")
    made.add_argument("--failure-pct", type=float, default=20.0)
    made.add_argument("--failure-min", type=int, default=3)
    made.add_argument("--success-pct", type=float, default=100.0)
    made.add_argument("--retries", type=int, default=1)
    sub("list", "list campaigns", list_campaigns)
    sub("show", "one campaign with its job counts", show, with_id=True)
    for action in ("approve", "pause", "resume", "cancel"):
        sub(action, f"{action} a campaign", act, with_id=True).set_defaults(action=action)
    sub("jobs", "a campaign's jobs", jobs, with_id=True)
    sub("job", "one job with its state history", job, with_id=True)
