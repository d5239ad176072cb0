"""``fernwart agent run`` and ``fernwart controller run``: the daemons, as the units start them."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

# Modules adding administrative actions to ``fernwart controller`` (each: ``register(actions)``):
# they work on the controller's database directly, with its --config, no API needed.
CONTROLLER_ACTIONS = (
    "fernwart_cli.dbinit",
    "fernwart_cli.tokens",
    "fernwart_cli.enroll",
    "fernwart_cli.keys",
)


def _runner(module_name: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        module = importlib.import_module(module_name)
        code: int = module.main(["--config", str(args.config), *(["--check"] if args.check else [])])
        return code

    return run


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, module_name, what in (
        ("agent", "agent.__main__", "the site agent"),
        ("controller", "controller.__main__", "the controller"),
    ):
        parser = subparsers.add_parser(name, help=f"run {what}")
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        run = actions.add_parser("run", help=f"run {what} in the foreground (exit 78 on bad config)")
        run.add_argument("--config", required=True, metavar="FILE", help="TOML configuration file")
        run.add_argument(
            "--check",
            action="store_true",
            help="validate the configuration and exit: 0 if valid, 78 (one line per problem) if not",
        )
        run.set_defaults(func=_runner(module_name))
        if name == "controller":
            for action_module in CONTROLLER_ACTIONS:
                try:
                    module = importlib.import_module(action_module)
                except ModuleNotFoundError as err:
                    if err.name != action_module:
                        raise
                    continue
                module.register(actions)
