"""``fernwart probe snmp HOST[:PORT]``: run the SNMP driver once and print the observation as JSON.

What a field engineer runs to check a device before adding it to an agent's configuration.
Secrets may come from the environment (FERNWART_SNMP_COMMUNITY, FERNWART_SNMP_AUTH_KEY,
FERNWART_SNMP_PRIV_KEY) instead of the command line, where other users' ``ps`` can see them.

Exit codes (fernwart_cli.exits): 0 read, 69 unreachable (EX_UNAVAILABLE), 77 credentials refused
(EX_NOPERM), 78 invalid options (EX_CONFIG), 70 the device answered garbage (EX_SOFTWARE).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, get_args

from pydantic import ValidationError

from collector.errors import AuthFailed, BadResponse, Unreachable
from collector.model import Observation
from collector.snmp import SnmpDriver, SnmpOptions
from collector.snmp.options import AuthProto, PrivProto
from collector.validation import clean_message
from fernwart_cli import cisco, exits, microsoft

EX_UNAVAILABLE = exits.UNAVAILABLE
EX_SOFTWARE = exits.SOFTWARE
EX_NOPERM = exits.NOPERM
EX_CONFIG = exits.CONFIG


def split_target(target: str) -> tuple[str, int | None]:
    """``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT`` → (host, port or None)."""
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if target.count(":") == 1:
        host, _, port = target.partition(":")
        return host, int(port)
    return target, None


def _options(args: argparse.Namespace) -> dict[str, Any]:
    host, port = split_target(args.target)
    options: dict[str, Any] = {"host": host, "timeout_s": args.timeout, "retries": args.retries}
    if port is not None:
        options["port"] = port
    community = args.community or os.environ.get("FERNWART_SNMP_COMMUNITY")
    if args.user:
        options["user"] = args.user
        options["auth_proto"] = args.auth_proto
        options["priv_proto"] = args.priv_proto
        auth_key = args.auth_key or os.environ.get("FERNWART_SNMP_AUTH_KEY")
        priv_key = args.priv_key or os.environ.get("FERNWART_SNMP_PRIV_KEY")
        if auth_key:
            options["auth_key"] = auth_key
        if priv_key:
            options["priv_key"] = priv_key
        if args.community:
            options["community"] = community  # both given: let validation say so
    elif community:
        options["community"] = community
    options["read_entity"] = not args.no_entity
    options["read_interfaces"] = not args.no_interfaces
    return options


async def probe(device_id: str, options: SnmpOptions) -> Observation:
    driver = SnmpDriver(device_id, options)
    try:
        return await driver.collect()
    finally:
        await driver.aclose()


def run_snmp(args: argparse.Namespace) -> int:
    try:
        host, _ = split_target(args.target)
        options = SnmpOptions.model_validate(_options(args))
    except ValueError as err:
        lines = (
            [f"{'.'.join(map(str, e['loc'])) or 'options'}: {clean_message(e['msg'])}" for e in err.errors()]
            if isinstance(err, ValidationError)
            else [f"target: {err}"]
        )
        for line in lines:
            _fail(line)
        return EX_CONFIG
    try:
        observation = asyncio.run(probe(args.device_id or _device_id(host), options))
    except AuthFailed as err:
        _fail(f"credentials refused: {err}")
        return EX_NOPERM
    except Unreachable as err:
        _fail(f"unreachable: {err}")
        _fail(_likely_causes(options))
        return EX_UNAVAILABLE
    except BadResponse as err:
        _fail(f"bad response: {err}")
        return EX_SOFTWARE
    sys.stdout.write(observation.model_dump_json(indent=2) + "\n")
    why = observation.raw.get("identification")
    if why:  # the JSON says it too; a person running the probe should not have to dig for it
        _fail(f"not identified: {why}")
    return exits.OK


def _likely_causes(options: SnmpOptions) -> str:
    """What usually makes a device stay silent. An SNMPv2c agent does not answer a wrong community
    at all (it drops the message, counting it only in snmpInBadCommunityNames), so "no answer" is
    all a wrong community ever looks like."""
    causes = [
        f"the device does not listen on udp port {options.port} (give HOST:PORT)",
        "an ACL or firewall drops this host's requests",
    ]
    if options.community is not None:
        causes.insert(0, "a wrong community (an SNMPv2c agent ignores it silently)")
    else:
        causes.insert(0, "SNMPv3 is not enabled for this user on the device")
    return "likely causes: " + "; ".join(causes)


def _fail(message: str) -> None:
    sys.stderr.write(f"fernwart probe snmp: {message}\n")


def _device_id(host: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in host).strip("-._")
    return (cleaned or "probe")[:128]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("probe", help="read a device once and print what the agent would see")
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    snmp = kinds.add_parser(
        "snmp",
        help="probe a device over SNMP (v2c with --community, v3 with --user)",
        description="Run the SNMP driver once against HOST[:PORT] and print the observation as JSON.",
    )
    snmp.add_argument("target", metavar="HOST[:PORT]", help="address, with port if not 161; [v6]:port")
    snmp.add_argument("--community", "-c", help="SNMPv2c community (or FERNWART_SNMP_COMMUNITY)")
    snmp.add_argument("--user", "-u", help="SNMPv3 user name")
    snmp.add_argument("--auth-proto", "-a", choices=get_args(AuthProto), default="SHA")
    snmp.add_argument("--auth-key", "-A", help="SNMPv3 auth passphrase (or FERNWART_SNMP_AUTH_KEY)")
    snmp.add_argument("--priv-proto", "-x", choices=get_args(PrivProto), default="AES")
    snmp.add_argument("--priv-key", "-X", help="SNMPv3 privacy passphrase (or FERNWART_SNMP_PRIV_KEY)")
    snmp.add_argument("--timeout", "-t", type=float, default=2.0, help="seconds per request (default 2)")
    snmp.add_argument("--retries", "-r", type=int, default=1, help="resends after a timeout (default 1)")
    snmp.add_argument("--device-id", help="device id to put in the observation (default: from HOST)")
    snmp.add_argument("--no-entity", action="store_true", help="skip the ENTITY-MIB table")
    snmp.add_argument("--no-interfaces", action="store_true", help="skip the IF-MIB table")
    snmp.set_defaults(func=run_snmp)
    microsoft.register_probes(kinds)
    cisco.register_probes(kinds)
