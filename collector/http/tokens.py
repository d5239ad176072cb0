"""Bearer tokens: fetched once, cached, refreshed before they expire, never logged.

- :class:`ClientCredentials`: Microsoft identity platform, OAuth2 client credentials
  (``POST {login}/{tenant}/oauth2/v2.0/token``, form ``grant_type=client_credentials``,
  ``client_id``, ``client_secret``, ``scope={graph}/.default``). No refresh token in this flow:
  a new token is requested before ``expires_in`` runs out (vendor-apis.md §1.3).
- :class:`RefreshTokenGrant`: Webex integrations and service apps refresh with
  ``grant_type=refresh_token`` at ``/v1/access_token``; the answer may carry a new refresh token,
  which replaces the old one (vendor-apis.md §2.1).
- :class:`StaticToken`: a token given as is (a Webex personal token for a probe).

:class:`TokenCache` in front of a fetcher hands out the cached token, refreshes it ahead of
expiry (one fetch at a time however many requests wait), and drops it when an API answers 401.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from collector.errors import BadResponse
from collector.http.auth import TokenSource

if TYPE_CHECKING:
    from collector.http.client import ApiClient

__all__ = [
    "AccessToken",
    "ClientCredentials",
    "RefreshTokenGrant",
    "StaticToken",
    "TokenCache",
    "TokenSource",
]


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)  # never in a repr, hence never in a log line or traceback
    expires_in_s: float
    obtained_at: float  # time.monotonic()
    refresh_token: str | None = field(default=None, repr=False)

    @property
    def expires_at(self) -> float:
        return self.obtained_at + self.expires_in_s


def _parse_token(body: Any, where: str, now: float) -> AccessToken:
    if not isinstance(body, dict):
        raise BadResponse(f"{where}: expected a JSON object with access_token")
    value, expires_in = body.get("access_token"), body.get("expires_in")
    if not isinstance(value, str) or not value:
        raise BadResponse(f"{where}: access_token missing")
    if not isinstance(expires_in, (int, float, str)):
        raise BadResponse(f"{where}: expires_in missing or not a number")
    try:
        lifetime = float(expires_in)  # Entra sends a number; some proxies send a string
    except (TypeError, ValueError):
        raise BadResponse(f"{where}: expires_in missing or not a number") from None
    if lifetime <= 0:
        raise BadResponse(f"{where}: expires_in must be positive, got {lifetime}")
    refresh = body.get("refresh_token")
    return AccessToken(value, lifetime, now, refresh if isinstance(refresh, str) else None)


class ClientCredentials:
    """Fetches app-only Graph tokens for one tenant."""

    def __init__(
        self,
        login: ApiClient,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: SecretStr,
        scope: str = "https://graph.microsoft.com/.default",
    ) -> None:
        self._login = login
        self._path = f"/{tenant_id}/oauth2/v2.0/token"
        self._client_id = client_id
        self._secret = client_secret
        self._scope = scope

    async def __call__(self) -> AccessToken:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._secret.get_secret_value(),
            "scope": self._scope,
        }
        response = await self._login.request("POST", self._path, data=form)
        return _parse_token(response.body, f"token endpoint {self._path}", time.monotonic())


class RefreshTokenGrant:
    """Fetches Webex access tokens with a refresh token (integration or service app)."""

    def __init__(
        self,
        api: ApiClient,
        *,
        client_id: str,
        client_secret: SecretStr,
        refresh_token: SecretStr,
        path: str = "/v1/access_token",
    ) -> None:
        self._api = api
        self._client_id = client_id
        self._secret = client_secret
        self._refresh = refresh_token
        self._path = path

    async def __call__(self) -> AccessToken:
        form = {
            "grant_type": "refresh_token",
            "client_id": self._client_id,
            "client_secret": self._secret.get_secret_value(),
            "refresh_token": self._refresh.get_secret_value(),
        }
        response = await self._api.request("POST", self._path, data=form)
        token = _parse_token(response.body, f"token endpoint {self._path}", time.monotonic())
        if token.refresh_token:
            self._refresh = SecretStr(token.refresh_token)  # Webex may rotate it
        return token


class TokenCache:
    """Hands out a cached token; refreshes it ``margin`` before expiry.

    The margin is ``refresh_margin_s`` but at most a tenth of the token's lifetime, so a short
    lived token (a test server's 5 s) is not refreshed on every request."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[AccessToken]],
        *,
        refresh_margin_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._margin = refresh_margin_s
        self._clock = clock
        self._current: AccessToken | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    def _fresh(self, token: AccessToken | None) -> bool:
        if token is None:
            return False
        margin = min(self._margin, token.expires_in_s / 10)
        return self._clock() < token.expires_at - margin

    async def current(self) -> AccessToken:
        if self._fresh(self._current):
            assert self._current is not None
            return self._current
        async with self._lock:  # one fetch, however many requests wait for it
            if not self._fresh(self._current):
                self._current = await self._fetch()
                self.fetches += 1
            assert self._current is not None
            return self._current

    async def token(self) -> str:
        return (await self.current()).value

    def invalidate(self, token: str) -> None:
        if self._current is not None and self._current.value == token:
            self._current = None


class StaticToken:
    """A token given by the operator; a 401 cannot be cured by asking again."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token.get_secret_value()

    def invalidate(self, token: str) -> None:
        """Nothing to refresh: the next request will be refused too and raise AuthFailed."""


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT access token, *not verified*: for reading ``roles``/``scp`` to tell an
    operator what was granted, never for an access decision. {} when it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}
