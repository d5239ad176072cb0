"""What README.md points a new user at exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from fernwart_cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_every_relative_link_and_named_file_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    links = set(re.findall(r"\]\(([^)#:]+)\)", readme))
    # Files named in backticks the way a user would copy them (`controller/examples/controller.toml`).
    named = set(
        re.findall(
            r"`((?:agent|controller|lab|systemd|bench|fernwart_cli)/[\w./-]+\.(?:toml|py|json))`", readme
        )
    )
    assert links
    missing = sorted(path for path in links | named if not (ROOT / path).exists())
    assert not missing


def _readme_commands() -> list[str]:
    """Every indented ``fernwart …`` line of the README, continuation lines joined."""
    lines = (ROOT / "README.md").read_text().splitlines()
    commands = []
    for index, line in enumerate(lines):
        if not line.startswith("    fernwart ") or lines[index - 1].rstrip().endswith("\\"):
            continue
        full, at = line.strip(), index
        while full.endswith("\\"):
            at += 1
            full = full[:-1] + " " + lines[at].strip()
        commands.append(full)
    return commands


def _as_argv(command: str) -> list[str]:
    """The README's meta-syntax made concrete: no comment, optional ``[…]`` left out, the first of
    ``a|b`` and of ``x | y`` alternatives, ``…`` and ``ID`` placeholders given a value."""
    command = re.sub(r"\s+#.*$", "", command).split(" | ")[0]
    while re.search(r"\[[^\[\]]*\]", command):
        command = re.sub(r"\[[^\[\]]*\]…?", "", command)
    argv = []
    for token in shlex.split(command.replace("…", "x")):
        first = token.split("|")[0]
        argv.append("1" if first in {"ID", "JOB_ID"} else first)
    return argv[1:]


def test_every_command_line_the_readme_shows_parses() -> None:
    # A flag renamed in the code but not in the README (or the reverse) is what a new user trips
    # on first: each documented command line must get past the real argument parser.
    commands = _readme_commands()
    assert len(commands) > 30
    failed = []
    for command in commands:
        try:
            build_parser().parse_args(_as_argv(command))
        except SystemExit:
            failed.append(command)
    assert not failed
