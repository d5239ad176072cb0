"""The ``fernwart`` command: a thin dispatcher over subcommand modules.

Each subcommand module exposes ``register(subparsers)``, which adds its parser(s) and sets
``func`` (``argparse.Namespace -> int``, the exit code). Modules are imported here, at the top
of the layering, so the packages below stay independent of each other.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in help order.
SUBCOMMANDS = (
    "fernwart_cli.demo",
    "fernwart_cli.daemons",
    "fernwart_cli.probe",
    "fernwart_cli.discover",
    "fernwart_cli.devices",
    "fernwart_cli.catalog",
    "fernwart_cli.campaign",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fernwart", description="fernwart: remote maintenance")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue  # not built yet in this checkout
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
