"""The ``fernwart`` command: a thin dispatcher over subcommand modules.

Each subcommand module exposes ``register(subparsers)``, which adds its parser(s) and sets
``func`` (``argparse.Namespace -> int``, the exit code). Modules are imported here, at the top
of the layering, so the packages below stay independent of each other.

Only the module of the command given is imported (``fernwart campaign plan`` does not load the
controller's storage, nor ``fernwart probe`` the catalog): importing all of them took 2.2 s here,
the planner's alone 0.5 s. ``fernwart --help`` and an unknown command load every module.
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
    "fernwart_cli.contracts",
    "fernwart_cli.campaign",
    "fernwart_cli.tenant",
)
# The command names each module registers.
COMMANDS = {
    "demo": "fernwart_cli.demo",
    "agent": "fernwart_cli.daemons",
    "controller": "fernwart_cli.daemons",
    "probe": "fernwart_cli.probe",
    "devices": "fernwart_cli.devices",
    "catalog": "fernwart_cli.catalog",
    "campaign": "fernwart_cli.campaign",
    "contracts": "fernwart_cli.contracts",
    "audit": "fernwart_cli.contracts",
    "discover": "fernwart_cli.discover",
    "tenant": "fernwart_cli.tenant",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with a known ``command``, built from that command's module alone."""
    parser = argparse.ArgumentParser(prog="fernwart", description="fernwart: remote maintenance")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = (COMMANDS[command],) if command in COMMANDS else SUBCOMMANDS
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue  # not built yet in this checkout
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    parser = build_parser(given[0] if given else None)
    args = parser.parse_args(given)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
