"""``fernwart discover --cidr NET``: find the devices of a site and print agent config entries.

Sweeps NET over SNMP (``--rate`` requests per second, ``--concurrency`` addresses at once),
reads the LLDP-MIB remote table of whatever answers, and prints what it found: a table
(default), ``--json`` (one object per device: address, how found — ``snmp`` or
``lldp:<switch>`` —, identification, suggested ``[[devices]]`` entry) or ``--toml`` (ready
``[[devices]]`` entries; ``--with-header`` adds site_id, [mqtt] and [outbox] to edit).
Secrets never appear in the output: entries refer to them as ``{ credential = "…" }``.

Exit codes (fernwart_cli.exits): 0 something found, 69 nothing answered (EX_UNAVAILABLE),
2 a bad or too large range, 78 invalid SNMP options (EX_CONFIG).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
from typing import Any, get_args

from pydantic import ValidationError

from collector.discover import Discovery, Found, discover
from collector.snmp import SnmpOptions
from collector.snmp.options import AuthProto, PrivProto
from collector.validation import clean_message
from fernwart_cli import exits
from fernwart_cli.probe import _options as probe_options

MAX_ADDRESSES = 4096


def _fail(message: str) -> None:
    sys.stderr.write(f"fernwart discover: {message}\n")


def _options(args: argparse.Namespace) -> SnmpOptions:
    args.target = "0.0.0.0"  # placeholder host, replaced by each swept address  # noqa: S104
    args.no_entity = args.no_interfaces = True
    options = probe_options(args)
    options["port"] = args.port
    return SnmpOptions.model_validate(options)


def _references(args: argparse.Namespace, options: SnmpOptions) -> dict[str, Any]:
    """The credentials as the agent config should hold them: references, never values."""
    prefix = args.credential_prefix
    if options.user is None:
        return {"community": {"credential": f"{prefix}-community"}}
    refs: dict[str, Any] = {"user": options.user}
    if options.auth_key is not None:
        refs |= {"auth_proto": options.auth_proto, "auth_key": {"credential": f"{prefix}-auth-key"}}
    if options.priv_key is not None:
        refs |= {"priv_proto": options.priv_proto, "priv_key": {"credential": f"{prefix}-priv-key"}}
    return refs


def suggested_entry(found: Found, port: int, refs: dict[str, Any]) -> dict[str, Any] | None:
    """A ``[[devices]]`` entry for a device that answered SNMP; None for one seen only via LLDP."""
    if not found.snmp or found.address is None:
        return None
    kind = "lldp" if found.neighbours else "snmp"
    return {"id": found.id, "kind": kind, "options": {"host": found.address, "port": port, **refs}}


def _as_json(found: Found, entry: dict[str, Any] | None) -> dict[str, Any]:
    ident = found.identification
    return {
        "id": found.id,
        "address": found.address,
        "how": found.how,
        "seen_on": found.seen_on,
        "snmp": found.snmp,
        "identification": {
            "vendor": ident.vendor,
            "family": ident.family,
            "model": ident.model,
            "serial": ident.serial,
            "version": ident.version,
        },
        "sys_name": found.sys_name,
        "sys_descr": found.sys_descr,
        "chassis_id": found.chassis_id,
        "lldp_neighbours": found.neighbours,
        "error": found.error,
        "device": entry,
    }


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def _comment(text: str) -> str:
    return " ".join(text.split())[:200]


def _describe(found: Found) -> str:
    ident = found.identification
    what = " ".join(x for x in (ident.vendor, ident.model) if x != "unknown") or "unidentified"
    return _comment(f"{what}; found by {', '.join(found.how)}")


def _as_toml(results: list[tuple[Found, dict[str, Any] | None]]) -> str:
    out: list[str] = []
    for found, entry in results:
        if entry is None:
            continue
        out += [f"# {_describe(found)}", "[[devices]]"]
        out += [f"id = {_toml_value(entry['id'])}", f"kind = {_toml_value(entry['kind'])}"]
        out.append("[devices.options]")
        out += [f"{key} = {_toml_value(value)}" for key, value in entry["options"].items()]
        out.append("")
    unpolled = [found for found, entry in results if entry is None]
    if unpolled:
        out.append("# Seen, not pollable with these credentials (their SNMP is off or refused us);")
        out.append('# a kind = "lldp" source above reports the LLDP ones to the controller:')
        for found in unpolled:
            where = f"; on {', '.join(found.seen_on)}" if found.seen_on else ""
            out.append(f"#   {found.id} {found.address or '-'}: {_describe(found)}{_comment(where)}")
    return "\n".join(out) + "\n"


HEADER = """site_id = "{site}"

[mqtt]
host = "mqtt.example.net"  # edit: the site's broker

[outbox]
path = "/var/lib/fernwart-agent/outbox.db"

"""


def _as_text(results: list[tuple[Found, dict[str, Any] | None]]) -> str:
    lines = []
    for found, entry in results:
        kind = entry["kind"] if entry else "-"
        lines.append(
            f"{found.address or '-':16} {found.id:28} {kind:5} {', '.join(found.how):22} {_describe(found)}"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def _summary(result: Discovery, rate: float) -> str:
    by_snmp = sum(1 for f in result.found if f.snmp)
    return (
        f"swept {result.swept} address(es), {len(result.silent)} silent; "
        f"found {len(result.found)} device(s), "
        f"{by_snmp} answering SNMP, {len(result.found) - by_snmp} only seen via LLDP or refused; "
        f"{result.requests} request(s) in {result.elapsed_s:.2f} s (limit {rate:g}/s)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        network = ipaddress.ip_network(args.cidr, strict=False)
    except ValueError as err:
        _fail(f"--cidr: {err}")
        return exits.USAGE
    if network.num_addresses > MAX_ADDRESSES:
        _fail(
            f"--cidr: {network} has {network.num_addresses} addresses; sweep at most {MAX_ADDRESSES} at once"
        )
        return exits.USAGE
    if args.rate <= 0 or args.concurrency < 1:
        _fail("--rate must be > 0 and --concurrency >= 1")
        return exits.USAGE
    try:
        options = _options(args)
    except ValidationError as err:
        for e in err.errors():
            _fail(f"{'.'.join(map(str, e['loc'])) or 'options'}: {clean_message(e['msg'])}")
        return exits.CONFIG
    hosts = [str(h) for h in (network.hosts() if network.num_addresses > 2 else network)]
    result = asyncio.run(discover(hosts, options, rate=args.rate, concurrency=args.concurrency))
    refs = _references(args, options)
    results = [(f, suggested_entry(f, args.port, refs)) for f in result.found]
    if args.json:
        sys.stdout.write(json.dumps([_as_json(f, e) for f, e in results], indent=2) + "\n")
    elif args.toml:
        header = HEADER.format(site=args.site_id) if args.with_header else ""
        sys.stdout.write(header + _as_toml(results))
    else:
        sys.stdout.write(_as_text(results))
    _fail(_summary(result, args.rate))
    return exits.OK if result.found else exits.UNAVAILABLE


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "discover",
        help="sweep a range over SNMP and LLDP and print agent config entries",
        description="Sweep a range over SNMP, read the LLDP neighbours of what answers, print what was found",
    )
    parser.add_argument("--cidr", required=True, help="the range to sweep, e.g. 10.1.20.0/24")
    parser.add_argument("--port", type=int, default=161, help="udp port (default 161)")
    parser.add_argument("--community", "-c", help="SNMPv2c community (or FERNWART_SNMP_COMMUNITY)")
    parser.add_argument("--user", "-u", help="SNMPv3 user name")
    parser.add_argument("--auth-proto", "-a", choices=get_args(AuthProto), default="SHA")
    parser.add_argument("--auth-key", "-A", help="SNMPv3 auth passphrase (or FERNWART_SNMP_AUTH_KEY)")
    parser.add_argument("--priv-proto", "-x", choices=get_args(PrivProto), default="AES")
    parser.add_argument("--priv-key", "-X", help="SNMPv3 privacy passphrase (or FERNWART_SNMP_PRIV_KEY)")
    parser.add_argument("--rate", type=float, default=50.0, help="SNMP requests per second (default 50)")
    parser.add_argument("--concurrency", type=int, default=32, help="addresses in flight (default 32)")
    parser.add_argument("--timeout", "-t", type=float, default=1.0, help="seconds per request (default 1)")
    parser.add_argument("--retries", "-r", type=int, default=1, help="resends after a timeout (default 1)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON object per device found")
    output.add_argument("--toml", action="store_true", help="[[devices]] entries for the agent config")
    parser.add_argument(
        "--with-header", action="store_true", help="with --toml: site_id, [mqtt], [outbox] too"
    )
    parser.add_argument("--site-id", default="site-1", help="site_id of --with-header (default site-1)")
    parser.add_argument(
        "--credential-prefix",
        default="snmp",
        help="entries refer to credentials PREFIX-community, PREFIX-auth-key, PREFIX-priv-key (default snmp)",
    )
    parser.set_defaults(func=run)
