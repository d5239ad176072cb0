"""One small REST client for the CLI's controller commands (contracts, campaigns, audit).

Exit codes (fernwart_cli.exits): 69 controller unreachable, 77 token refused, 65 the controller
refused the input (every ``loc: msg`` printed), 1 not found or not allowed in the current state
(404, 409), 70 any other answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import aiohttp

from fernwart_cli import exits
from fernwart_cli.credentials import (
    CredentialError,
    add_token_argument,
    api_token,
    auth_headers,
    refused,
    token_source,
)

DEFAULT_URL = "http://127.0.0.1:8080"


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--controller",
        metavar="URL",
        help=f"controller base URL (env FERNWART_CONTROLLER_URL, default {DEFAULT_URL})",
    )
    add_token_argument(parser)


def _problem(error: dict[str, Any]) -> str:
    """``loc: msg``; a path parameter's location (``path.id``) is left out: the user typed the id
    as an argument, and the message names it already ("no campaign 999"); a query parameter is
    named as the flag the user typed (``--since``, not ``query.since``)."""
    loc = [str(part) for part in error.get("loc", [])]
    if not loc or loc[0] == "path":
        return str(error.get("msg"))
    if loc[0] == "query" and len(loc) == 2:
        # The CLI's query parameters are its flags of the same name (audit --since, plan --dry-run).
        return f"--{loc[1].replace('_', '-')}: {error.get('msg')}"
    return f"{'.'.join(loc)}: {error.get('msg')}"


def _problems(text: str) -> str:
    try:
        errors = json.loads(text).get("errors", [])
        return "; ".join(_problem(e) for e in errors)
    except (ValueError, AttributeError):
        return text[:500]


async def _request(
    base: str, token: str | None, method: str, path: str, *, body: Any, params: dict[str, str] | None
) -> tuple[int, str]:
    url = base.rstrip("/") + path
    data = json.dumps(body).encode() if body is not None else None
    headers = {**auth_headers(token), "Content-Type": "application/json"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
            session.request(method, url, data=data, params=params, headers=headers) as response,
        ):
            return response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError) as err:
        raise ApiError(exits.UNAVAILABLE, f"cannot reach the controller at {base}: {err}") from None


def call(
    args: argparse.Namespace,
    method: str,
    path: str,
    *,
    body: Any = None,
    params: dict[str, str] | None = None,
) -> str:
    """The answer's text for a 2xx. Raises :class:`ApiError` with the exit code otherwise."""
    base = getattr(args, "controller", None) or os.environ.get("FERNWART_CONTROLLER_URL") or DEFAULT_URL
    try:
        token = api_token(args)
    except CredentialError as err:
        raise ApiError(exits.USAGE, str(err)) from None
    status, text = asyncio.run(_request(base, token, method, path, body=body, params=params))
    if 200 <= status < 300:
        return text
    if status in {401, 403}:
        raise ApiError(exits.NOPERM, refused(status, token_source(args) if token else None, known=True))
    if status in {400, 413, 422}:
        raise ApiError(exits.DATAERR, f"the controller refused it: {_problems(text)}")
    if status in {404, 409}:
        raise ApiError(exits.FAILURE, _problems(text))
    raise ApiError(exits.SOFTWARE, f"{method} {path}: HTTP {status}")


def run(prog: str, work: Any) -> int:
    """Run ``work()`` (returns the exit code), printing an :class:`ApiError` as ``prog: message``."""
    try:
        code: int = work()
    except ApiError as err:
        sys.stderr.write(f"{prog}: {err}\n")
        return err.code
    return code
