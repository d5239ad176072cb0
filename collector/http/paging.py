"""Following a listing to its end: ``@odata.nextLink`` (Graph) and ``Link: rel="next"`` (Webex).

Graph: follow the next link *verbatim* until absent (it carries ``$skiptoken``); the documented
example is relative (``/teamwork/devices?…``), real answers are absolute, so a relative link is
resolved against the API base including its version path (vendor-apis.md §1.6).
Webex (RFC 8288, formerly RFC 5988): the ``Link`` header's ``rel="next"`` URL, with two known
defects the WebexPythonSDK works around (``restsession._fix_next_url``, issue #168): a ``max=null``
parameter, and filter parameters dropped from the next URL, silently widening the listing. We
remove the first and put the caller's filters back (vendor-apis.md §2.6).

Both guard against a server that loops (a next link seen before) and against unbounded listings.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

from yarl import URL

from collector.errors import BadResponse
from collector.http.client import ApiClient

MAX_PAGES = 10_000
# A listing whose next link never repeats (``?page=N+1`` forever) of pages near the body cap would
# otherwise collect MAX_PAGES x 32 MiB. Real listings are far below: 5,000 devices are ~10 MiB.
MAX_LISTING_BYTES = 256 * 1024 * 1024


def _check_size(client: ApiClient, start: int, max_bytes: int, target: str) -> None:
    if client.bytes_read - start > max_bytes:
        raise BadResponse(f"{client.vendor} GET {target}: listing larger than {max_bytes} bytes")


_LINK_PART = re.compile(r"\s*<(?P<url>[^>]*)>\s*(?P<params>(?:;\s*[^;,]+)*)")
_REL = re.compile(r'rel\s*=\s*"?(?P<rel>[^";]+)"?', re.IGNORECASE)


def parse_link_header(value: str | None) -> dict[str, str]:
    """``Link`` header → {rel: url} (every rel of a space-separated list; first occurrence wins)."""
    links: dict[str, str] = {}
    if not value:
        return links
    for match in _LINK_PART.finditer(value):
        rel = _REL.search(match.group("params") or "")
        if rel is None:
            continue
        for name in rel.group("rel").split():
            links.setdefault(name.lower(), match.group("url").strip())
    return links


def fix_webex_next(next_url: str, filters: Mapping[str, str]) -> URL:
    """Drop ``max=null`` and restore any of ``filters`` the server left out of a next URL."""
    url = URL(next_url, encoded=True)
    query = {k: v for k, v in url.query.items() if not (k == "max" and v in {"null", ""})}
    for key, value in filters.items():
        query.setdefault(key, value)
    return url.with_query(query)


def _resolve_odata(client: ApiClient, link: str) -> URL:
    if link.startswith("/"):
        base_path = client.base_url.path.rstrip("/")
        # The documented relative form omits the version segment ("/teamwork/..." under /beta).
        path = link if base_path and link.startswith(base_path + "/") else base_path + link
        return URL(str(client.base_url.origin()) + path, encoded=True)
    return client.url_for(link)


async def odata_pages(
    client: ApiClient,
    target: str,
    params: Mapping[str, str] | None = None,
    *,
    max_pages: int = MAX_PAGES,
    max_bytes: int = MAX_LISTING_BYTES,
) -> AsyncIterator[list[Any]]:
    """Each page's ``value`` list of a Graph collection, following ``@odata.nextLink``."""
    url: URL = client.url_for(target, params)
    seen: set[str] = set()
    start = client.bytes_read
    for _ in range(max_pages):
        seen.add(str(url))
        body = await client.get_json(url)
        _check_size(client, start, max_bytes, target)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise BadResponse(f"{client.vendor} GET {url.path}: expected an object with a 'value' list")
        yield body["value"]
        link = body.get("@odata.nextLink")
        if not link:
            return
        if not isinstance(link, str):
            raise BadResponse(f"{client.vendor} GET {url.path}: @odata.nextLink is not a string")
        url = _resolve_odata(client, link)
        if str(url) in seen:
            raise BadResponse(f"{client.vendor} GET {url.path}: @odata.nextLink repeats a page already read")
    raise BadResponse(f"{client.vendor} GET {target}: more than {max_pages} pages")


async def link_pages(
    client: ApiClient,
    target: str,
    params: Mapping[str, str] | None = None,
    *,
    items_key: str = "items",
    max_pages: int = MAX_PAGES,
    max_bytes: int = MAX_LISTING_BYTES,
) -> AsyncIterator[list[Any]]:
    """Each page's ``items`` of a Webex listing, following ``Link: <…>; rel="next"``."""
    filters = {k: v for k, v in (params or {}).items() if k not in {"max", "start"}}
    url: URL = client.url_for(target, params)
    seen: set[str] = set()
    start = client.bytes_read
    for _ in range(max_pages):
        seen.add(str(url))
        response = await client.request("GET", url)
        _check_size(client, start, max_bytes, target)
        body = response.body
        if not isinstance(body, dict) or not isinstance(body.get(items_key), list):
            raise BadResponse(
                f"{client.vendor} GET {url.path}: expected an object with an '{items_key}' list"
            )
        yield body[items_key]
        next_link = parse_link_header(response.headers.get("Link")).get("next")
        if not next_link:
            return
        url = client.url_for(fix_webex_next(next_link, filters))
        if str(url) in seen:
            raise BadResponse(f"{client.vendor} GET {url.path}: Link rel=next repeats a page already read")
    raise BadResponse(f"{client.vendor} GET {target}: more than {max_pages} pages")
