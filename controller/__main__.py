"""``fernwart-controller --config FILE``: load the settings, run the daemon.

Exit codes as for the agent: 0 clean stop, 78 (EX_CONFIG) bad configuration, 1 runtime failure,
130 a second SIGTERM/SIGINT (:mod:`runtime.signals`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import structlog

from controller import service
from controller.gc_tuning import tune_gc
from controller.settings import ControllerSettings, load_settings
from controller.storage.guard import DatabaseNotInitialized, require_file
from runtime.config import EX_CONFIG, ConfigError, config_error_lines
from runtime.logging import configure_logging
from runtime.redaction import register_settings_secrets


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fernwart-controller", description="fernwart controller daemon")
    parser.add_argument(
        "--config", type=Path, help="TOML configuration file (defaults plus FERNWART_* env without)"
    )
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
    return parser


def _load(path: Path | None) -> ControllerSettings:
    """The settings, and the configured SQLite file must exist (the daemon never creates one)."""
    settings = load_settings(path)
    try:
        require_file(settings.database.url.get_secret_value())
    except DatabaseNotInitialized as err:
        raise ConfigError([str(err)]) from None
    return settings


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _load(args.config)
    except ConfigError as err:
        sys.stderr.write("".join(f"{line}\n" for line in config_error_lines(err)))  # before logging exists
        return EX_CONFIG
    if args.check:
        return 0
    register_settings_secrets(settings)  # the database URL and its password, the broker password
    configure_logging(settings.log_level)
    tune_gc()
    try:
        asyncio.run(service.run(settings))
    except KeyboardInterrupt:
        return 1
    except DatabaseNotInitialized as err:  # PostgreSQL without a schema, an empty SQLite file
        sys.stderr.write(f"config error: {err}\n")
        structlog.get_logger(__name__).error("database_not_initialized", error=str(err))
        return EX_CONFIG
    except Exception:
        structlog.get_logger(__name__).exception("controller_failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
