"""A vendor (or a server posing as one) that echoes our secrets in its error: never in our messages.

Found: vendor error descriptions go into DriverError messages verbatim (first line, 300 chars),
and those messages reach the agent's log, the per-device error published over MQTT and the
controller's database. A token endpoint answering ``invalid_client: … secret '<client secret>'``
or an API answering ``token <bearer> lacks roles`` put the secret there.
"""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from structlog.testing import capture_logs

from collector.errors import AuthFailed, DriverError, Forbidden
from collector.http import ApiClient, ClientCredentials, RefreshTokenGrant, RetryPolicy, TokenCache

CLIENT_SECRET = "Gr4ph-client-s3cret-6c1d"
REFRESH_TOKEN = "W3bex-refresh-t0ken-88a2"
ACCESS_TOKEN = "eyJ0eXAi.access-t0ken-51f0.sig"
SECRETS = (CLIENT_SECRET, REFRESH_TOKEN, ACCESS_TOKEN)


async def _echoing_server() -> TestServer:
    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_secret") == CLIENT_SECRET and form.get("grant_type") == "client_credentials":
            return web.json_response(
                {"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}
            )
        echoed = " ".join(f"{k}={v}" for k, v in form.items())
        return web.json_response(
            {"error": "invalid_client", "error_description": f"AADSTS7000215: bad request {echoed}"},
            status=400,
        )

    async def api(request: web.Request) -> web.Response:
        bearer = request.headers.get("Authorization", "")
        return web.json_response(
            {
                "error": {
                    "code": "Forbidden",
                    "message": f"{bearer} lacks DeviceManagementManagedDevices.Read.All",
                }
            },
            status=403,
            headers={"request-id": bearer},
        )

    app = web.Application()
    app.router.add_post("/tenant-1/oauth2/v2.0/token", token)
    app.router.add_post("/v1/access_token", token)
    app.router.add_get("/v1.0/{tail:.*}", api)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def _assert_clean(err: DriverError, logs: list[dict[str, object]]) -> None:
    text = f"{err} {getattr(err, 'request_id', '')} {logs}"
    assert "[redacted]" in str(err)
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize("grant", ["graph", "webex"])
async def test_a_token_endpoint_echoing_the_secret(grant: str) -> None:
    server = await _echoing_server()
    try:
        async with aiohttp.ClientSession() as session:
            login = ApiClient(
                session, vendor=grant, base_url=str(server.make_url("/")), policy=RetryPolicy(retries=0)
            )
            fetch = (
                ClientCredentials(
                    login,
                    tenant_id="tenant-1",
                    client_id="app",
                    client_secret=SecretStr("wrong-" + CLIENT_SECRET),
                )
                if grant == "graph"
                else RefreshTokenGrant(
                    login,
                    client_id="app",
                    client_secret=SecretStr(CLIENT_SECRET),
                    refresh_token=SecretStr(REFRESH_TOKEN),
                )
            )
            with capture_logs() as logs, pytest.raises(AuthFailed) as err:
                await fetch()
        _assert_clean(err.value, logs)
    finally:
        await server.close()


async def test_an_api_echoing_the_bearer_token() -> None:
    server = await _echoing_server()
    try:
        async with aiohttp.ClientSession() as session:
            login = ApiClient(session, vendor="graph", base_url=str(server.make_url("/")))
            fetch = ClientCredentials(
                login, tenant_id="tenant-1", client_id="app", client_secret=SecretStr(CLIENT_SECRET)
            )
            api = ApiClient(
                session,
                vendor="graph",
                base_url=str(server.make_url("/v1.0")),
                auth=TokenCache(fetch),
                policy=RetryPolicy(retries=0),
            )
            with capture_logs() as logs, pytest.raises(Forbidden) as err:
                await api.get_json("/deviceManagement/managedDevices")
        _assert_clean(err.value, logs)
    finally:
        await server.close()
