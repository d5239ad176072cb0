"""``fernwart tenant check VENDOR …``: does a customer's app registration / service app grant what
fernwart needs, before it goes into an agent's config? One run, JSON out, nothing changed.

Each vendor's checks live beside its probes (``fernwart_cli.microsoft`` for Microsoft,
``fernwart_cli.cisco`` for Webex); this module only builds the command.
"""

from __future__ import annotations

import argparse

from fernwart_cli import cisco, microsoft


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("tenant", help="check a customer's cloud credentials before onboarding")
    actions = parser.add_subparsers(dest="tenant_action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="obtain a token and compare granted scopes with what is needed")
    vendors = check.add_subparsers(dest="vendor", required=True, metavar="VENDOR")
    microsoft.register_tenant_checks(vendors)
    cisco.register_tenant_checks(vendors)
