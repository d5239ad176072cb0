"""A Webex service app's first token, then refreshes (vendor-apis.md §2.1, webex-admin.json).

A service app is authorised by a Full Admin in Control Hub; its tokens are obtained with
``POST /v1/applications/{applicationId}/token`` and the JSON body ``{clientId, clientSecret,
targetOrgId}``, called with an *integration* token that has the ``spark:applications_token`` scope.
The answer carries a refresh token; from then on the access token is refreshed with
``grant_type=refresh_token`` at ``/v1/access_token`` like an integration's
(:class:`~collector.http.RefreshTokenGrant`), so the integration token is used once per process.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import SecretStr

from collector.errors import BadResponse
from collector.http import AccessToken, ApiClient, RefreshTokenGrant


class ServiceAppToken:
    def __init__(
        self,
        app_api: ApiClient,
        token_api: ApiClient,
        *,
        application_id: str,
        client_id: str,
        client_secret: SecretStr,
        target_org_id: str,
    ) -> None:
        self._app_api = app_api  # authorised with the integration token
        self._token_api = token_api  # no Authorization: the refresh grant carries the secrets
        self._path = f"/applications/{application_id}/token"
        self._client_id = client_id
        self._secret = client_secret
        self._org = target_org_id
        self._refresh: RefreshTokenGrant | None = None

    async def __call__(self) -> AccessToken:
        if self._refresh is not None:
            return await self._refresh()
        body = {
            "clientId": self._client_id,
            "clientSecret": self._secret.get_secret_value(),
            "targetOrgId": self._org,
        }
        response = await self._app_api.request("POST", self._path, json_body=body)
        token = _token(response.body, f"webex POST {self._path}")
        if token.refresh_token:
            self._refresh = RefreshTokenGrant(
                self._token_api,
                client_id=self._client_id,
                client_secret=self._secret,
                refresh_token=SecretStr(token.refresh_token),
                path="/access_token",
            )
        return token


def _token(body: Any, where: str) -> AccessToken:
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise BadResponse(f"{where}: expected a JSON object with access_token")
    try:
        lifetime = float(body.get("expires_in"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadResponse(f"{where}: expires_in missing or not a number") from None
    if lifetime <= 0:
        raise BadResponse(f"{where}: expires_in must be positive, got {lifetime}")
    refresh = body.get("refresh_token")
    return AccessToken(
        body["access_token"], lifetime, time.monotonic(), refresh if isinstance(refresh, str) else None
    )
