"""What README.md points a new user at exists."""

from __future__ import annotations

import re
from pathlib import Path

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
