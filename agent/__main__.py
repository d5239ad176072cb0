"""``fernwart-agent --config FILE``: load the config, then run the service until stopped.

Exit codes (the same for both daemons): 0 after a clean stop, 78 (EX_CONFIG) for any
configuration problem — every problem is printed to stderr at once, one line each naming its key
path — 1 for a runtime failure and 130 when a second SIGTERM/SIGINT cut the drain short
(:mod:`runtime.signals`). The systemd unit has ``RestartPreventExitStatus=78``: a bad config is
not retried.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import structlog

from agent import service
from agent.settings import load_settings
from runtime.config import EX_CONFIG, ConfigError, config_error_lines
from runtime.logging import configure_logging
from runtime.redaction import register_settings_secrets

log = structlog.get_logger("agent")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fernwart-agent", description="fernwart site agent")
    parser.add_argument("--config", required=True, metavar="FILE", help="agent TOML config file")
    parser.add_argument(
        "--check", action="store_true", help="validate the config, print nothing on success and exit"
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="overrides log_level from the config",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as err:
        sys.stderr.write("".join(f"{line}\n" for line in config_error_lines(err)))  # before logging exists
        return EX_CONFIG
    if args.check:
        return 0
    register_settings_secrets(settings)  # broker password, communities, v3 keys: masked in every line
    configure_logging(args.log_level or settings.log_level)
    try:
        asyncio.run(service.run(settings))
    except Exception:
        log.exception("agent_failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
