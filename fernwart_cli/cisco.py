"""``fernwart probe webex``, ``fernwart probe xapi`` and ``fernwart tenant check webex``.

What a field engineer runs before a Webex org or an on-premises codec goes into an agent's
config: one read, JSON on stdout, problems on stderr. Secrets only from the environment
(``--token-env VAR``, ``--password-env VAR``), never from the command line where ``ps`` shows them.

Exit codes (fernwart_cli.exits): 0 read, 1 a permission is missing (tenant check), 69
unreachable, 70 an unusable answer, 77 credentials refused, 78 invalid options or a missing
variable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from collector.errors import AuthFailed, BadResponse, Unreachable
from collector.model import Observation
from collector.validation import clean_message
from collector.webex import WebexOptions, WebexSource
from collector.webex.check import check
from collector.xapi import XapiOptions, XapiSource
from fernwart_cli import exits

M = TypeVar("M", bound=BaseModel)


class _Sink:
    def __init__(self) -> None:
        self.observations: list[Observation] = []
        self.errors: dict[str, str] = {}

    def observe(self, observation: Observation) -> None:
        self.observations.append(observation)

    def device_error(self, device_id: str, message: str, *, reachable: bool = False) -> None:
        self.errors[device_id] = message if not reachable else f"{message} (device reachable)"


def _fail(command: str, message: str) -> None:
    sys.stderr.write(f"fernwart {command}: {message}\n")


def _secret_from_env(command: str, variable: str | None, what: str) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        _fail(command, f"{what}: environment variable {variable} is not set or empty")
    return value or None


def _options(command: str, model: type[M], raw: dict[str, Any]) -> M | None:
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        for e in err.errors():
            _fail(command, f"{'.'.join(map(str, e['loc'])) or 'options'}: {clean_message(e['msg'])}")
        return None


def _run(command: str, work: Callable[[], Coroutine[Any, Any, Any]]) -> tuple[int, Any]:
    try:
        return exits.OK, asyncio.run(work())
    except AuthFailed as err:
        _fail(command, f"credentials refused: {err}")
        return exits.NOPERM, None
    except Unreachable as err:
        _fail(command, f"unreachable: {err}")
        return exits.UNAVAILABLE, None
    except BadResponse as err:
        _fail(command, f"bad response: {err}")
        return exits.SOFTWARE, None


def _webex_options(command: str, args: argparse.Namespace) -> WebexOptions | None:
    raw: dict[str, Any] = {"base_url": args.base_url}
    if args.org_id:
        raw["org_id"] = args.org_id
    token = _secret_from_env(command, args.token_env, "--token-env")
    refresh = _secret_from_env(command, getattr(args, "refresh_token_env", None), "--refresh-token-env")
    secret = _secret_from_env(command, getattr(args, "client_secret_env", None), "--client-secret-env")
    if (args.token_env and not token) or (getattr(args, "refresh_token_env", None) and not refresh):
        return None
    raw |= {
        k: v
        for k, v in {"access_token": token, "refresh_token": refresh, "client_secret": secret}.items()
        if v
    }
    integration = _secret_from_env(
        command, getattr(args, "integration_token_env", None), "--integration-token-env"
    )
    if getattr(args, "integration_token_env", None) and not integration:
        return None
    if integration:
        raw["integration_token"] = integration
    for key in ("client_id", "application_id", "target_org_id"):
        if getattr(args, key, None):
            raw[key] = getattr(args, key)
    return _options(command, WebexOptions, raw)


def run_probe_webex(args: argparse.Namespace) -> int:
    options = _webex_options("probe webex", args)
    if options is None:
        return exits.CONFIG
    source = WebexSource("probe", options)
    sink = _Sink()

    async def work() -> None:
        try:
            await source.collect(sink)
        finally:
            await source.aclose()

    code, _ = _run("probe webex", work)
    if code != exits.OK:
        return code
    out = {
        "source": "webex",
        "devices": [json.loads(o.model_dump_json()) for o in sink.observations],
        "device_errors": sink.errors,
    }
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return exits.OK


def run_probe_xapi(args: argparse.Namespace) -> int:
    password = _secret_from_env("probe xapi", args.password_env, "--password-env")
    if password is None:
        return exits.CONFIG
    host, _, port = args.host.rpartition(":") if args.host.count(":") == 1 else (args.host, "", "")
    raw: dict[str, Any] = {
        "host": host,
        "user": args.user,
        "password": password,
        "scheme": "http" if args.http else "https",
        "verify_tls": not args.insecure,
        "timeout_s": args.timeout,
    }
    if port:
        raw["port"] = port
    options = _options("probe xapi", XapiOptions, raw)
    if options is None:
        return exits.CONFIG
    source = XapiSource(args.device_id or "probe", options)
    sink = _Sink()

    async def work() -> None:
        try:
            await source.collect(sink)
        finally:
            await source.aclose()

    code, _ = _run("probe xapi", work)
    if code == exits.OK:
        sys.stdout.write(sink.observations[0].model_dump_json(indent=2) + "\n")
    return code


_CREDENTIAL_FLAGS = (
    "--token-env VAR, or --client-id C --client-secret-env VAR --refresh-token-env VAR, or (a service"
    " app) --application-id A --integration-token-env VAR --target-org-id O --client-id C"
    " --client-secret-env VAR"
)


def run_tenant_check_webex(args: argparse.Namespace) -> int:
    given = ("token_env", "client_id", "refresh_token_env", "application_id", "integration_token_env")
    if not any(getattr(args, flag, None) for flag in given):
        # The driver's own message names the agent's config keys (access_token, …): this user typed flags.
        _fail("tenant check webex", f"no credentials given: use {_CREDENTIAL_FLAGS}")
        return exits.USAGE
    options = _webex_options("tenant check webex", args)
    if options is None:
        return exits.CONFIG
    source = WebexSource("check", options)

    async def work() -> dict[str, Any]:
        try:
            return await check(source)
        finally:
            await source.aclose()

    code, report = _run("tenant check webex", work)
    if code != exits.OK:
        return code
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    for line in report["missing"]:
        _fail("tenant check webex", f"missing scope {line}")
    return exits.FAILURE if report["missing"] else exits.OK


def _webex_arguments(parser: argparse.ArgumentParser, *, refresh: bool) -> None:
    # Without the refresh flags an access token is the only credential: argparse then names the
    # missing flag (exit 2) instead of the driver naming its config key ``access_token``.
    parser.add_argument(
        "--token-env",
        metavar="VAR",
        required=not refresh,
        help="environment variable holding an access token",
    )
    if refresh:
        parser.add_argument("--client-id", help="integration / service app client id (with refresh)")
        parser.add_argument("--client-secret-env", metavar="VAR", help="variable holding the client secret")
        parser.add_argument("--refresh-token-env", metavar="VAR", help="variable holding the refresh token")
        parser.add_argument("--application-id", help="service app id (first token via an integration token)")
        parser.add_argument(
            "--integration-token-env",
            metavar="VAR",
            help="variable holding an integration token with spark:applications_token (service app)",
        )
        parser.add_argument("--target-org-id", help="the customer's org the service app is authorised in")
    parser.add_argument(
        "--base-url", default="https://webexapis.com/v1", help="API base (default: %(default)s)"
    )
    parser.add_argument("--org-id", help="the customer's org id (partner administrators)")


def register_probes(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    webex = kinds.add_parser("webex", help="list a Webex org's devices once (JSON)")
    _webex_arguments(webex, refresh=False)
    webex.set_defaults(func=run_probe_webex)
    xapi = kinds.add_parser("xapi", help="read an on-premises RoomOS/CE codec once (JSON)")
    xapi.add_argument("host", metavar="HOST[:PORT]")
    xapi.add_argument("--user", "-u", required=True, help="a local admin user of the codec")
    xapi.add_argument("--password-env", metavar="VAR", required=True, help="variable holding its password")
    xapi.add_argument("--http", action="store_true", help="plain HTTP (default HTTPS)")
    xapi.add_argument("--insecure", action="store_true", help="do not verify the codec's certificate")
    xapi.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    xapi.add_argument("--device-id", help="device id to put in the observation")
    xapi.set_defaults(func=run_probe_xapi)


def register_tenant_checks(checks: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    webex = checks.add_parser("webex", help="check a Webex integration / service app's scopes")
    _webex_arguments(webex, refresh=True)
    webex.set_defaults(func=run_tenant_check_webex)
