"""``fernwart controller init --config FILE``: create the controller's database and migrate it,
and the key that signs commands to agents when there is none yet.

The daemon never creates a database (a deleted SQLite file or a wrong URL would otherwise start
an empty fleet silently, see controller/storage/guard.py); this action does, and it is harmless
on a database that exists: it only runs the migrations still missing. Likewise the command key
(``[commands] key_file``): created once, never replaced (agents trust its public key), and its
public key printed for the agents' ``[controller] command_key``; without it the daemon would run
campaigns that can start no job. Exit codes (fernwart_cli.exits): 0 ready, 1 the key file exists
but cannot be used or cannot be created, 78 (EX_CONFIG) unusable configuration, 69 the database
cannot be reached or created.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import sqlalchemy.exc

from controller.commands.keys import KeyFileError, create_key, load_key, public_text
from controller.settings import load_settings
from controller.storage import Store
from controller.storage.guard import describe_database, sqlite_path
from fernwart_cli import exits
from runtime.config import ConfigError


def init(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as err:
        for problem in err.problems:
            sys.stderr.write(f"config error: {problem}\n")
        return exits.CONFIG
    url = settings.database.url.get_secret_value()
    path = sqlite_path(url)
    existed = path is not None and path.exists()

    async def run() -> None:
        async with Store.open(url, create=True):
            pass

    try:
        asyncio.run(run())
    except (OSError, sqlalchemy.exc.OperationalError, sqlalchemy.exc.DatabaseError) as err:
        # The driver's own words (never the URL: it may hold the password).
        reason = getattr(err, "orig", None) or getattr(err, "strerror", None) or type(err).__name__
        sys.stderr.write(f"fernwart controller init: {describe_database(url)}: {reason}\n")
        return exits.UNAVAILABLE
    state = "migrated" if existed or path is None else "created"
    sys.stdout.write(f"{describe_database(url)}: {state}, schema at the newest revision\n")
    return _command_key(settings.commands.key_file)


def _command_key(path: Path) -> int:
    """Create the command key if missing (never replace one); print its public key last."""
    try:
        if path.exists():
            key, state = load_key(path), "kept"
        else:
            key, state = create_key(path), "created (mode 0600)"
    except KeyFileError as err:
        sys.stderr.write(f"fernwart controller init: commands.key_file: {err}\n")
        return exits.FAILURE
    sys.stdout.write(f"command key {path}: {state}; the agents' [controller] command_key:\n")
    sys.stdout.write(public_text(key) + "\n")
    return exits.OK


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "init", help="create the database (or migrate it); the daemon never creates one by itself"
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="the controller's TOML")
    parser.set_defaults(func=init)
