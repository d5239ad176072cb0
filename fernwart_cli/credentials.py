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


def token_source(args: argparse.Namespace) -> str | None:
    """Where :func:`api_token` took the token from (for messages; never the token), or None."""
    path: Path | None = getattr(args, "token_file", None)
    if path is not None:
        return f"--token-file {path}"
    if os.environ.get("FERNWART_TOKEN_FILE"):
        return f"$FERNWART_TOKEN_FILE ({os.environ['FERNWART_TOKEN_FILE']})"
    return "$FERNWART_TOKEN" if os.environ.get("FERNWART_TOKEN") else None


def refused(status: int, source: str | None = None, *, known: bool = False) -> str:
    """The line for a 401/403. ``known``: the caller knows ``source`` (None = no token was sent);
    "set FERNWART_TOKEN" told an operator who had given a revoked token to do what they had done."""
    if status != 401:
        return "the controller refused this request for the token's role"
    if known and source is None:
        return "no API token given: use --token-file FILE, or set FERNWART_TOKEN_FILE or FERNWART_TOKEN"
    if source is not None:
        return (
            f"the controller refused the API token from {source}: unknown, revoked or expired"
            " (`fernwart controller token list` on the controller's host)"
        )
    return (
        "the controller refused the API token (none given, or unknown, revoked or expired):"
        " use --token-file FILE, FERNWART_TOKEN_FILE or FERNWART_TOKEN"
    )
