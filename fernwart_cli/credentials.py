"""The API token of the CLI's REST clients.

From ``--token-file FILE`` or ``$FERNWART_TOKEN_FILE`` (a file holding the token, e.g. a
systemd credential), else ``$FERNWART_TOKEN``. Never a command-line value: arguments are
visible to every user of the machine in ``ps``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fernwart_cli import exits

EX_NOPERM = exits.NOPERM  # the controller refused the token (401/403)


class CredentialError(Exception):
    pass


def add_token_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="file holding the API token (default $FERNWART_TOKEN_FILE, or the token in $FERNWART_TOKEN)",
    )


def api_token(args: argparse.Namespace) -> str | None:
    path: Path | None = getattr(args, "token_file", None)
    if path is None and os.environ.get("FERNWART_TOKEN_FILE"):
        path = Path(os.environ["FERNWART_TOKEN_FILE"])
    if path is not None:
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise CredentialError(f"cannot read the token file {path}: {err.strerror}") from None
        if not token:
            raise CredentialError(f"the token file {path} is empty")
        return token
    return os.environ.get("FERNWART_TOKEN") or None


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def refused(status: int) -> str:
    if status == 401:
        return "the controller wants a valid API token: set FERNWART_TOKEN or use --token-file"
    return "the controller refused this request for the token's role"
