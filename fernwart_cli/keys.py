"""``fernwart controller key create|show --config FILE``: the key that signs commands to agents.

``create`` writes the Ed25519 private key to ``[commands] key_file`` (mode 0600, never replaced)
and prints the public key; ``show`` prints the public key (``ed25519:BASE64``) as the last line of
standard output, for each agent's ``[controller] command_key``. The private key is never printed.
Exit codes (fernwart_cli.exits): 0 done, 1 the key file exists (create) or is unusable (show),
78 (EX_CONFIG) unusable configuration.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from controller.commands.keys import KeyFileError, create_key, load_key, public_text
from controller.settings import load_settings
from fernwart_cli import exits
from runtime.config import ConfigError, config_error_lines


def _key_file(args: argparse.Namespace) -> Path | None:
    try:
        settings = load_settings(args.config)
    except ConfigError as err:
        sys.stderr.write("".join(f"{line}\n" for line in config_error_lines(err)))
        return None
    return settings.commands.key_file


def create(args: argparse.Namespace) -> int:
    path = _key_file(args)
    if path is None:
        return exits.CONFIG
    try:
        key = create_key(path)
    except KeyFileError as err:
        sys.stderr.write(f"fernwart controller key create: commands.key_file: {err}\n")
        return exits.FAILURE
    sys.stdout.write(f"wrote {path} (mode 0600); give the agents this [controller] command_key:\n")
    sys.stdout.write(public_text(key) + "\n")
    return exits.OK


def show(args: argparse.Namespace) -> int:
    path = _key_file(args)
    if path is None:
        return exits.CONFIG
    try:
        key = load_key(path)
    except KeyFileError as err:
        sys.stderr.write(f"fernwart controller key show: commands.key_file: {err}\n")
        return exits.FAILURE
    sys.stdout.write(public_text(key) + "\n")
    return exits.OK


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser("key", help="create or show the key that signs commands to agents")
    commands = parser.add_subparsers(dest="key_action", required=True, metavar="ACTION")
    for name, func, what in (
        ("create", create, "create the signing key (mode 0600) and print its public key"),
        ("show", show, "print the public key for the agents' [controller] command_key"),
    ):
        sub = commands.add_parser(name, help=what)
        sub.add_argument("--config", type=Path, required=True, metavar="FILE", help="the controller's TOML")
        sub.set_defaults(func=func)
