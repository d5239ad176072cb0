"""Who may do what: roles, permissions, API tokens. Pure: no I/O, no web framework.

A token is ``fwt_`` followed by 256 random bits (base64url). Only its SHA-256 is stored: with
that much entropy a slow password hash (argon2, scrypt) adds nothing an attacker holding the
database could not skip, and a fast one lets every request be checked with one indexed lookup.
Passwords typed by people (a later console login) get argon2 instead; see :mod:`controller.web.auth`.

Roles and what they may do:

=============  ======  =======  =======  =====  =======
role           read    monitor  operate  admin  approve
=============  ======  =======  =======  =====  =======
noc-admin      all     yes      yes      yes    yes
noc-operator   all     yes      yes      no     no
noc-viewer     all     yes      no       no     no
customer       tenant  no       no       no     own tenant
=============  ======  =======  =======  =====  =======

*read*: inventory, findings, catalog (a customer: its tenant's part). *monitor*: what spans every
tenant (``/metrics``); every NOC role, no customer. *operate*: devices and campaigns. *admin*: catalog writes,
tokens, enrollment of sites and agents, broker configuration. *approve*: a customer approves
its own feature updates (Step 7).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

TOKEN_PREFIX = "fwt_"  # noqa: S105 (a prefix, not a secret)


class Role(StrEnum):
    NOC_ADMIN = "noc-admin"
    NOC_OPERATOR = "noc-operator"
    NOC_VIEWER = "noc-viewer"
    CUSTOMER = "customer"


class Permission(StrEnum):
    READ = "read"
    MONITOR = "monitor"
    OPERATE = "operate"
    ADMIN = "admin"
    APPROVE = "approve"


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.NOC_ADMIN: frozenset(Permission),
    Role.NOC_OPERATOR: frozenset({Permission.READ, Permission.MONITOR, Permission.OPERATE}),
    Role.NOC_VIEWER: frozenset({Permission.READ, Permission.MONITOR}),
    Role.CUSTOMER: frozenset({Permission.READ, Permission.APPROVE}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the token (or later, the user behind a session) and what it may see."""

    token_id: int
    name: str
    role: Role
    tenant: str | None  # set for customers; NOC roles see every tenant

    def may(self, permission: Permission) -> bool:
        return permission in _GRANTS[self.role]

    @property
    def scoped(self) -> bool:
        """True when this principal sees one tenant only."""
        return self.role is Role.CUSTOMER

    def sees(self, tenant: str | None) -> bool:
        """Whether an object of ``tenant`` exists for this principal."""
        return not self.scoped or (tenant is not None and tenant == self.tenant)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def looks_like_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX) and 20 <= len(value) <= 128 and value.isascii()


class TokenRequestError(ValueError):
    """A token request that cannot be granted (customer without tenant, tenant for a NOC role…)."""


def check_token_request(role: Role, tenant: str | None) -> None:
    if role is Role.CUSTOMER and not tenant:
        raise TokenRequestError("tenant: a customer token needs the tenant it may see")
    if role is not Role.CUSTOMER and tenant:
        raise TokenRequestError(f"tenant: only customer tokens are limited to a tenant, not {role.value}")
