"""One tenant's Graph connection: token cache, request budget, a v1.0 and a beta client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from collector.graph.options import GraphOptions
from collector.http import ApiClient, ClientCredentials, RequestBudget, RetryPolicy, TokenCache


@dataclass
class GraphApi:
    session: aiohttp.ClientSession
    tokens: TokenCache
    login: ApiClient
    v1: ApiClient  # {graph_url}/v1.0: Intune
    beta: ApiClient  # {graph_url}/beta: the retired teamworkDevice API
    budget: RequestBudget  # the tenant's, shared by v1 and beta

    @property
    def requests_made(self) -> int:
        return self.login.requests_made + self.v1.requests_made + self.beta.requests_made

    async def aclose(self) -> None:
        await self.session.close()


def open_api(
    options: GraphOptions,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    session: aiohttp.ClientSession | None = None,
) -> GraphApi:
    """Must run inside the event loop (aiohttp sessions belong to one loop)."""
    own = session or aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=options.request_deadline_s),
        connector=aiohttp.TCPConnector(limit_per_host=max(4, options.concurrency)),
    )
    policy = RetryPolicy(retries=options.retries)
    budget = RequestBudget(options.rate_per_s, options.burst, sleep=sleep)
    deadline = options.request_deadline_s
    login = ApiClient(
        own,
        vendor="microsoft login",
        base_url=options.login_url,
        policy=policy,
        deadline_s=deadline,
        sleep=sleep,
    )
    tokens = TokenCache(
        ClientCredentials(
            login,
            tenant_id=options.tenant_id,
            client_id=options.client_id,
            client_secret=options.client_secret,
            scope=f"{_resource(options.graph_url)}/.default",
        )
    )
    v1, beta = (
        ApiClient(
            own,
            vendor=vendor,
            base_url=options.graph_url + path,
            auth=tokens,
            budget=budget,
            policy=policy,
            deadline_s=deadline,
            sleep=sleep,
        )
        for vendor, path in (("graph", "/v1.0"), ("graph beta", "/beta"))
    )
    return GraphApi(own, tokens, login, v1, beta, budget)


def _resource(graph_url: str) -> str:
    """The token scope's resource. A test server on loopback still asks for the real resource
    name, as the global cloud's login would expect; national clouds use their own host."""
    if graph_url.startswith("http://"):
        return "https://graph.microsoft.com"
    return graph_url
