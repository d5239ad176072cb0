"""``fernwart controller token create|list|revoke --config FILE``: API tokens without the API.

The bootstrap path: on a new controller nobody holds a token yet. These actions open the
controller's database directly (the same ``--config`` the daemon reads) and need nothing else.
``create`` prints the token as the last line of standard output, once; it is stored hashed.
Exit codes (fernwart_cli.exits): 0 done, 1 no such token, 2 usage, 78 (EX_CONFIG) unusable
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time
from pathlib import Path

import sqlalchemy.exc

from controller.auth import Role, TokenRequestError
from controller.settings import load_settings
from controller.storage import Store, tokens
from controller.storage.guard import DatabaseNotInitialized
from fernwart_cli import exits
from runtime.config import ConfigError, config_error_lines

EX_USAGE = exits.USAGE
EX_CONFIG = exits.CONFIG


def _expiry(text: str) -> datetime:
    """``YYYY-MM-DD`` (valid through that day, UTC) or an ISO 8601 time with offset."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time.max, tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the time with its offset (e.g. +01:00 or Z): {text!r}")
    return moment.astimezone(UTC)


def _with_store(args: argparse.Namespace, work: Callable[[Store], Awaitable[int]]) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as err:
        sys.stderr.write("".join(f"{line}\n" for line in config_error_lines(err)))
        return EX_CONFIG

    async def run() -> int:
        async with Store.open(settings.database.url.get_secret_value(), create=False) as store:
            return await work(store)

    try:
        return asyncio.run(run())
    except DatabaseNotInitialized as err:
        sys.stderr.write(f"fernwart controller token: {err}\n")
        return EX_CONFIG
    except (OSError, sqlalchemy.exc.OperationalError) as err:
        # The driver's own words (never the URL: it may hold the password).
        reason = getattr(err, "orig", None) or getattr(err, "strerror", None) or type(err).__name__
        sys.stderr.write(f"fernwart controller token: cannot open the controller's database: {reason}\n")
        return exits.UNAVAILABLE


def create(args: argparse.Namespace) -> int:
    if args.expires is not None and args.expires <= datetime.now(UTC):
        sys.stderr.write("fernwart controller token create: --expires lies in the past\n")
        return EX_USAGE

    async def work(store: Store) -> int:
        try:
            info, secret = await tokens.create_token(
                store,
                name=args.name,
                role=Role(args.role),
                tenant=args.tenant,
                expires_at=args.expires,
                created_by="cli",
            )
        except TokenRequestError as err:
            sys.stderr.write(f"fernwart controller token create: {err}\n")
            return EX_USAGE
        expires = info.expires_at.isoformat() if info.expires_at else "never"
        sys.stdout.write(
            f"token {info.id} {info.name!r}: role {info.role.value}"
            f"{', tenant ' + info.tenant if info.tenant else ''}, expires {expires}\n"
            "shown once; keep it safe:\n"
        )
        sys.stdout.write(secret + "\n")
        return exits.OK

    return _with_store(args, work)


def list_tokens(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        found = await tokens.list_tokens(store)
        if args.json:
            sys.stdout.write(json.dumps([info.record() for info in found], indent=2) + "\n")
            return exits.OK
        now = datetime.now(UTC)
        for info in found:
            state = "revoked" if info.revoked_at else ("expired" if not info.usable(now) else "active")
            used = info.last_used_at.isoformat(timespec="seconds") if info.last_used_at else "never"
            tenant = info.tenant or "-"
            fields = (str(info.id), info.name, info.role.value, tenant, state, f"last used {used}")
            sys.stdout.write("\t".join(fields) + "\n")
        return exits.OK

    return _with_store(args, work)


def revoke(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        info = await tokens.revoke_token(store, args.id)
        if info is None:
            sys.stderr.write(f"fernwart controller token revoke: no token with id {args.id}\n")
            return exits.FAILURE
        sys.stdout.write(f"token {info.id} {info.name!r} revoked\n")
        return exits.OK

    return _with_store(args, work)


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser("token", help="create, list and revoke API tokens (works on the database)")
    commands = parser.add_subparsers(dest="token_action", required=True, metavar="ACTION")

    def config(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--config", type=Path, required=True, metavar="FILE", help="the controller's TOML")

    new = commands.add_parser("create", help="create a token and print it (last line of stdout)")
    new.add_argument("--name", required=True, help="who or what holds it (shown in the access log)")
    new.add_argument("--role", required=True, choices=[role.value for role in Role])
    new.add_argument("--tenant", help="customer tokens: the tenant they may see")
    new.add_argument("--expires", type=_expiry, metavar="DATE", help="YYYY-MM-DD (through that day, UTC)")
    config(new)
    new.set_defaults(func=create)

    listing = commands.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--json", action="store_true")
    config(listing)
    listing.set_defaults(func=list_tokens)

    rev = commands.add_parser("revoke", help="revoke a token and end its console sessions")
    rev.add_argument("id", type=int, help="the token's id (see token list)")
    config(rev)
    rev.set_defaults(func=revoke)
