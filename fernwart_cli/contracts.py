"""``fernwart contracts import|show|approve|scope`` and ``fernwart audit export``: REST clients.

``contracts import --policy FILE [--windows FILE]`` sends the TOML files of the offline planner
(README, "Campaign files") to the controller, which validates them with the same parser: the
controller stores exactly what ``fernwart campaign plan`` reads. A bad file: exit 65 and every
problem, one line each, naming its key path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from fernwart_cli import exits
from fernwart_cli.api import ApiError, add_client_arguments, call, run


def _jsonable(value: Any) -> Any:
    """TOML's dates and times as the ISO 8601 text the schema reads back."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ApiError(exits.USAGE, f"{path}: cannot read: {err.strerror or err}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ApiError(exits.DATAERR, f"{path}: {err}") from None


def import_contracts(args: argparse.Namespace) -> int:
    def work() -> int:
        body = {"policy": _jsonable(_toml(args.policy))}
        if args.windows is not None:
            body["windows"] = _jsonable(_toml(args.windows))
        counts = json.loads(call(args, "PUT", "/api/v1/contracts", body=body))
        sys.stdout.write(", ".join(f"{n} {what}" for what, n in counts.items()) + " imported\n")
        return exits.OK

    return run("fernwart contracts", work)


def show(args: argparse.Namespace) -> int:
    def work() -> int:
        found = json.loads(call(args, "GET", f"/api/v1/customers/{args.customer}"))
        upcoming = json.loads(
            call(args, "GET", f"/api/v1/customers/{args.customer}/windows", params={"n": "5"})
        )
        found["next_windows"] = upcoming["items"]
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return exits.OK

    return run("fernwart contracts", work)


def approve(args: argparse.Namespace) -> int:
    def work() -> int:
        expires = args.expires.isoformat() if args.expires else None
        body = {"family": args.family, "version": args.version, "expires": expires}
        row = json.loads(call(args, "POST", f"/api/v1/customers/{args.customer}/approvals", body=body))
        sys.stdout.write(
            f"{row['family']} {row['version']} approved by {row['approved_by']} at {row['approved_at']}\n"
        )
        return exits.OK

    return run("fernwart contracts", work)


def scope(args: argparse.Namespace) -> int:
    def work() -> int:
        site, _, device = args.device.partition("/")
        if not site or not device:
            raise ApiError(exits.USAGE, f"{args.device!r}: expected SITE/DEVICE")
        answer = json.loads(
            call(args, "PUT", f"/api/v1/scope/{site}/{device}", body={"in_scope": args.state == "in"})
        )
        sys.stdout.write(f"{site}/{device}: {args.state} scope\n")
        if answer.get("known") is False:
            sys.stderr.write(
                f"fernwart contracts: note: no device {site}/{device} has reported yet: the scope applies"
                " once it does (a typo? `fernwart devices list` shows the ids)\n"
            )
        return exits.OK

    return run("fernwart contracts", work)


def webhook_secret(args: argparse.Namespace) -> int:
    """The customer's webhook key, derived from ``[notices] webhook_secret`` of the controller's
    configuration (printed once, for the customer's receiver; it is stored nowhere)."""
    from controller.campaigns.notices import customer_secret  # noqa: PLC0415 - only this action needs the controller
    from controller.settings import load_settings  # noqa: PLC0415
    from runtime.config import ConfigError  # noqa: PLC0415

    try:
        settings = load_settings(args.config)
    except ConfigError as err:
        for line in err.problems:
            sys.stderr.write(f"fernwart contracts: {args.config}: {line}\n")
        return exits.CONFIG
    master = settings.notices.webhook_secret
    if master is None:
        sys.stderr.write(
            f"fernwart contracts: {args.config}: notices.webhook_secret is not set:"
            ' set it, e.g. webhook_secret = { credential = "webhook-secret" }, and restart the controller\n'
        )
        return exits.FAILURE
    sys.stdout.write(customer_secret(master.get_secret_value().encode(), args.customer).decode() + "\n")
    return exits.OK


def _unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written, checked before asking the controller (no wasted export)."""
    parent = path.parent
    if not parent.is_dir():
        return f"directory {parent} does not exist"
    if path.is_dir():
        return "is a directory"
    if not os.access(path if path.exists() else parent, os.W_OK):
        return "permission denied"
    return None


def export_audit(args: argparse.Namespace) -> int:
    if args.output is not None and (problem := _unwritable(args.output)) is not None:
        sys.stderr.write(f"fernwart audit: --output {args.output}: {problem}\n")
        return exits.USAGE

    def work() -> int:
        params = {"format": args.format}
        params |= {
            k: v for k, v in (("customer", args.customer), ("kind", args.kind), ("since", args.since)) if v
        }
        text = call(args, "GET", "/api/v1/audit", params=params)
        if args.output is None:
            sys.stdout.write(text)
        else:
            try:
                args.output.write_text(text, encoding="utf-8")
            except OSError as err:
                sys.stderr.write(f"fernwart audit: --output {args.output}: {err.strerror}\n")
                return exits.USAGE
        return exits.OK

    return run("fernwart audit", work)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("contracts", help="customers' contracts in the controller")
    actions = parser.add_subparsers(dest="contracts_command", required=True, metavar="ACTION")
    imp = actions.add_parser("import", help="store the policy (and windows) files in the controller")
    imp.add_argument("--policy", required=True, type=Path)
    imp.add_argument("--windows", type=Path)
    imp.set_defaults(func=import_contracts)
    shown = actions.add_parser("show", help="a customer's stored contract and its next windows")
    shown.add_argument("customer")
    shown.set_defaults(func=show)
    approval = actions.add_parser("approve", help="record the customer's approval of a feature update")
    approval.add_argument("customer")
    approval.add_argument("--family", required=True)
    approval.add_argument("--version", required=True)
    approval.add_argument("--expires", type=date.fromisoformat, help="valid through this day (YYYY-MM-DD)")
    approval.set_defaults(func=approve)
    scoped = actions.add_parser("scope", help="put a device into or out of the contract scope")
    scoped.add_argument("device", metavar="SITE/DEVICE")
    scoped.add_argument("state", choices=("in", "out"))
    scoped.set_defaults(func=scope)
    for sub in (imp, shown, approval, scoped):
        add_client_arguments(sub)
    secret = actions.add_parser(
        "webhook-secret", help="the key a customer's webhook receiver checks signatures with"
    )
    secret.add_argument("customer")
    secret.add_argument("--config", required=True, type=Path, help="the controller's configuration file")
    secret.set_defaults(func=webhook_secret)

    audit = subparsers.add_parser("audit", help="the audit log of contract-aware updates")
    audit_actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    export = audit_actions.add_parser("export", help="every decision, oldest first, as JSON lines or CSV")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--customer")
    export.add_argument(
        "--kind", choices=("policy", "approval", "plan", "notice", "command", "outcome", "campaign")
    )
    export.add_argument("--since", help="ISO 8601 date-time with offset")
    export.add_argument("--output", type=Path, help="write to FILE instead of standard output")
    add_client_arguments(export)
    export.set_defaults(func=export_audit)
