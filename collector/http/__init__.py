"""The shared aiohttp layer of the cloud drivers (Graph, Webex): tokens, budget, retries, paging.

A driver builds one :class:`ApiClient` per source (tenant, organisation) and reads through it;
every failure arrives as one of :mod:`collector.errors`, with the vendor's request id.
"""

from collector.http.budget import RequestBudget
from collector.http.client import ApiClient, ApiResponse
from collector.http.paging import fix_webex_next, link_pages, odata_pages, parse_link_header
from collector.http.retry import RetryPolicy, parse_retry_after
from collector.http.tokens import (
    AccessToken,
    ClientCredentials,
    RefreshTokenGrant,
    StaticToken,
    TokenCache,
    TokenSource,
    jwt_claims,
)

__all__ = [
    "AccessToken",
    "ApiClient",
    "ApiResponse",
    "ClientCredentials",
    "RefreshTokenGrant",
    "RequestBudget",
    "RetryPolicy",
    "StaticToken",
    "TokenCache",
    "TokenSource",
    "fix_webex_next",
    "jwt_claims",
    "link_pages",
    "odata_pages",
    "parse_link_header",
    "parse_retry_after",
]
