"""The Microsoft commands: ``fernwart probe graph`` and ``fernwart tenant check microsoft``.

``probe graph`` runs the Graph source once against a tenant, as the agent would, and prints the
observations, the per-device errors, each device's automatic capabilities and the requests it
took, as JSON.

``tenant check microsoft`` verifies a customer's app registration before it goes into an
agent's config.

Obtains a token with the client-credentials flow, reads the application permissions granted to
it (the JWT ``roles`` claim; read, not verified: this is a report, not an access decision) and
compares them with the least-privilege set each fernwart capability needs. Each missing one is
named with what it enables; permissions broader than needed are named too. JSON on stdout.
The client secret comes from the environment (``--client-secret-env VAR``) or a file
(``--client-secret-file PATH``), never from the command line, where ``ps`` shows it.

Exit codes (fernwart_cli.exits): probe: 0 read, 77 credentials refused, 69 unreachable, 70 an
unusable answer, 78 bad arguments. Check: 0 everything granted, 1 a capability lacks a
permission, 77 no token, 69 login unreachable, 78 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import ValidationError

from collector.errors import AuthFailed, DriverError, Unreachable
from collector.graph import GraphOptions, GraphSource
from collector.http import ApiClient, ClientCredentials, jwt_claims
from collector.model import Observation
from collector.validation import clean_message
from fernwart_cli import exits
from runtime.logging import configure_logging

# capability → (any one of these application permissions, what it enables). Least privilege first.
MICROSOFT_CAPABILITIES: dict[str, tuple[tuple[str, ...], str]] = {
    "inventory": (
        ("DeviceManagementManagedDevices.Read.All", "DeviceManagementManagedDevices.ReadWrite.All"),
        "Intune inventory of Teams Rooms and Teams Android devices, and the Teams Rooms app version",
    ),
    "teams_health": (
        ("TeamworkDevice.Read.All", "TeamworkDevice.ReadWrite.All"),
        (
            "peripherals, sign-in and per-component versions from the beta teamworkDevice API, where the"
            " tenant still answers it"
        ),
    ),
    "restart": (
        ("DeviceManagementManagedDevices.PrivilegedOperations.All",),
        "restarting devices through Intune (rebootNow)",
    ),
    "update": (
        ("TeamworkDevice.ReadWrite.All",),
        "software updates through teamworkDevice updateSoftware, where the tenant still answers it",
    ),
    "service_health": (("ServiceHealth.Read.All",), "Microsoft 365 service health (Teams incidents)"),
}
_LEAST = {perms[0] for perms, _ in MICROSOFT_CAPABILITIES.values()}
_BROADER = {"DeviceManagementManagedDevices.ReadWrite.All": "DeviceManagementManagedDevices.Read.All"}


def add_microsoft_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", required=True, help="tenant id (GUID) or verified domain")
    parser.add_argument("--client-id", required=True, help="the app registration's application (client) id")
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument("--client-secret-env", metavar="VAR", help="environment variable holding the secret")
    secret.add_argument("--client-secret-file", metavar="PATH", help="file holding the secret")
    parser.add_argument("--graph-url", default="https://graph.microsoft.com", help="Graph base URL")
    parser.add_argument("--login-url", default="https://login.microsoftonline.com", help="login base URL")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")


def _secret(args: argparse.Namespace) -> str:
    if args.client_secret_env:
        value = os.environ.get(args.client_secret_env)
        if not value:
            raise ValueError(f"--client-secret-env: environment variable {args.client_secret_env} is not set")
        return value
    try:
        return Path(args.client_secret_file).read_text(encoding="utf-8").removesuffix("\n")
    except OSError as err:
        raise ValueError(f"--client-secret-file: cannot read it ({type(err).__name__})") from None


def graph_options(args: argparse.Namespace, **extra: Any) -> GraphOptions:
    """The source options from the arguments; ``ValueError`` lines name the argument at fault."""
    raw = {
        "tenant_id": args.tenant,
        "client_id": args.client_id,
        "client_secret": _secret(args),
        "graph_url": args.graph_url,
        "login_url": args.login_url,
        "request_deadline_s": args.timeout,
        **extra,
    }
    try:
        return GraphOptions.model_validate(raw)
    except ValidationError as err:
        lines = [f"--{str(e['loc'][0]).replace('_', '-')}: {clean_message(e['msg'])}" for e in err.errors()]
        raise ValueError("\n".join(lines)) from None


def compare_roles(roles: list[str]) -> dict[str, Any]:
    granted = set(roles)
    capabilities, missing = {}, []
    for name, (accepted, enables) in MICROSOFT_CAPABILITIES.items():
        have = sorted(granted & set(accepted))
        capabilities[name] = {"granted": bool(have), "by": have, "enables": enables}
        if not have:
            missing.append({"capability": name, "permission": accepted[0], "enables": enables})
    broader = [
        {"permission": role, "least_privilege": _BROADER[role]}
        for role in sorted(granted)
        if role in _BROADER
    ]
    unused = sorted(
        granted - _LEAST - set(_BROADER) - {p for a, _ in MICROSOFT_CAPABILITIES.values() for p in a}
    )
    return {
        "capabilities": capabilities,
        "missing": missing,
        "broader_than_needed": broader,
        "not_used": unused,
    }


async def check_microsoft(options: GraphOptions) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        login = ApiClient(
            session,
            vendor="microsoft login",
            base_url=options.login_url,
            deadline_s=options.request_deadline_s,
        )
        creds = ClientCredentials(
            login,
            tenant_id=options.tenant_id,
            client_id=options.client_id,
            client_secret=options.client_secret,
        )
        token = await creds()
    claims = jwt_claims(token.value)
    roles = [r for r in claims.get("roles", []) if isinstance(r, str)]
    return {
        "tenant": options.tenant_id,
        "token": "obtained",
        "token_expires_in_s": token.expires_in_s,
        "token_tenant": claims.get("tid"),
        "roles": sorted(roles),
        **compare_roles(roles),
    }


def run_check_microsoft(args: argparse.Namespace) -> int:
    try:
        options = graph_options(args)
    except ValueError as err:
        for line in str(err).splitlines():
            _fail(line)
        return exits.CONFIG
    logs_to_stderr()
    try:
        report = asyncio.run(check_microsoft(options))
    except AuthFailed as err:
        _fail(f"no token: {err}")
        return exits.NOPERM
    except Unreachable as err:
        _fail(f"login unreachable: {err}")
        return exits.UNAVAILABLE
    except DriverError as err:
        _fail(f"unexpected answer: {err}")
        return exits.SOFTWARE
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    for item in report["missing"]:
        _fail(
            f"missing {item['permission']} (application): needed for {item['capability']}: {item['enables']}"
        )
    return exits.FAILURE if report["missing"] else exits.OK


def logs_to_stderr() -> None:
    """stdout carries the JSON report: warnings (retries given up, an API turned off) go to stderr,
    through the daemons' chain, so a secret a vendor echoes is scrubbed there too."""
    configure_logging("warning", stream=sys.stderr, cache=False)


def _fail(message: str, command: str = "tenant check") -> None:
    sys.stderr.write(f"fernwart {command}: {message}\n")


async def probe_graph(options: GraphOptions) -> dict[str, Any]:
    """One collect of the tenant, as the agent would do it; the observations and what it cost."""
    source = GraphSource("probe", options)
    sink = _ListSink()
    try:
        await source.collect(sink)
        capabilities = {device: sorted(source.capabilities(device)) for device in sink.observations}
        requests = source.api.requests_made
    finally:
        await source.aclose()
    return {
        "tenant": options.tenant_id,
        "devices": [json.loads(o.model_dump_json()) for o in sink.observations.values()],
        "device_errors": sink.errors,
        "skipped_not_teams_devices": source.skipped,
        "capabilities": capabilities,
        "requests": requests,
    }


class _ListSink:
    def __init__(self) -> None:
        self.observations: dict[str, Observation] = {}
        self.errors: dict[str, str] = {}

    def observe(self, observation: Observation) -> None:
        self.observations[observation.device_id] = observation

    def device_error(self, device_id: str, message: str, *, reachable: bool = False) -> None:
        del reachable
        self.errors[device_id] = message


def run_graph(args: argparse.Namespace) -> int:
    try:
        options = graph_options(args, teamwork=args.teamwork, retries=args.retries)
    except ValueError as err:
        for line in str(err).splitlines():
            _fail(line, "probe graph")
        return exits.CONFIG
    logs_to_stderr()
    try:
        report = asyncio.run(probe_graph(options))
    except AuthFailed as err:
        _fail(f"credentials refused: {err}", "probe graph")
        return exits.NOPERM
    except Unreachable as err:
        _fail(f"unreachable: {err}", "probe graph")
        return exits.UNAVAILABLE
    except DriverError as err:
        _fail(f"bad response: {err}", "probe graph")
        return exits.SOFTWARE
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return exits.OK


def register_probes(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    graph = kinds.add_parser(
        "graph",
        help="read a Microsoft tenant's Teams devices through Graph (Intune; the beta API where it answers)",
        description="Run the Graph source once against a tenant and print the observations as JSON.",
    )
    add_microsoft_args(graph)
    graph.add_argument("--teamwork", choices=("auto", "off"), default="auto", help="use the retired beta API")
    graph.add_argument("--retries", type=int, default=3, help="resends after a 429/503 (default 3)")
    graph.set_defaults(func=run_graph)


def register_tenant_checks(vendors: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    microsoft = vendors.add_parser(
        "microsoft",
        help="an Entra app registration (client credentials) for Graph",
        description="Get a token for the app registration and report each capability's permissions as JSON.",
    )
    add_microsoft_args(microsoft)
    microsoft.set_defaults(func=run_check_microsoft)
