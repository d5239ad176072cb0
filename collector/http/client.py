"""One vendor API, one :class:`ApiClient`: auth, budget, retries, deadline, error translation.

Every request of a source goes through :meth:`ApiClient.request`, which

1. waits for the source's :class:`~collector.http.budget.RequestBudget` (per tenant);
2. adds ``Authorization: Bearer`` from the :class:`~collector.http.tokens.TokenSource` and a fresh
   ``client-request-id`` (Graph logs it, so a request that got no answer can still be traced);
3. retries 423/429/500/502/503/504 and connection failures at most ``policy.retries`` times,
   waiting what ``Retry-After`` says or else the shared jittered backoff;
4. on a 401 drops the token and tries once more with a new one (an expired token, not a wrong
   secret, is the usual cause; a second 401 is :class:`~collector.errors.AuthFailed`);
5. gives up at the request deadline (``deadline_s``, retries and waits included): a wait that
   would end past it is not started;
6. translates every failure into one of :mod:`collector.errors` (see :mod:`.translate`).

Tokens, secrets and request bodies never appear in a message or a log line. ``requests_made``
counts every HTTP exchange (attempts, not calls), for the tests and the bench.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from multidict import CIMultiDictProxy
from yarl import URL

from collector.errors import BadResponse, DriverError, Unreachable
from collector.http.auth import TokenSource
from collector.http.budget import RequestBudget
from collector.http.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after
from collector.http.translate import error_for_status, request_id

log = structlog.get_logger(__name__)

# A vendor page is a few hundred kB; a hostile or broken server (or a gzip bomb: aiohttp inflates
# as it reads) must not fill the agent's memory. Bodies past this are a BadResponse.
MAX_BODY_BYTES = 32 * 1024 * 1024


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The (decompressed) body, or None once it passes ``limit`` bytes: read no further."""
    if response.content_length is not None and response.content_length > limit:
        return None
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any  # parsed JSON, or None for an empty body
    request_id: str | None
    url: URL


_SECRET_FIELDS = ("secret", "token", "password", "assertion")


def _sent_secrets(token: str | None, form: Mapping[str, str] | None) -> tuple[str, ...]:
    """The secrets a request carried: its bearer token and the form's secret fields."""
    found = [v for k, v in (form or {}).items() if any(word in k.lower() for word in _SECRET_FIELDS)]
    return tuple(s for s in (token, *found) if s)


class ApiClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        vendor: str,
        base_url: str,
        auth: TokenSource | None = None,
        budget: RequestBudget | None = None,
        policy: RetryPolicy | None = None,
        deadline_s: float = 30.0,
        client_request_id_header: str | None = "client-request-id",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._session = session
        self.max_body_bytes = max_body_bytes
        self.vendor = vendor
        self.base_url = URL(base_url.rstrip("/"))
        if not self.base_url.is_absolute():
            raise ValueError(f"{vendor}: base_url must be an absolute http(s) URL, got {base_url!r}")
        self._auth = auth
        self._budget = budget
        self.policy = policy or RetryPolicy()
        self.deadline_s = deadline_s
        self._rid_header = client_request_id_header
        self._sleep = sleep
        self.requests_made = 0
        self.bytes_read = 0  # decompressed body bytes, for the paging guard and the bench
        self.retries_made = 0
        self.waited_s = 0.0

    # --- URLs ------------------------------------------------------------------------------

    def url_for(self, target: str | URL, params: Mapping[str, str] | None = None) -> URL:
        """A path is joined to ``base_url`` (keeping its path: ``/beta`` + ``/teamwork/devices``);
        an absolute URL (a next link) is used verbatim, but only on the base URL's origin, so a
        token is never sent to another host."""
        if isinstance(target, URL):
            url = target
        elif target.startswith(("http://", "https://")):
            url = URL(target, encoded=True)
        else:
            path = target if target.startswith("/") else "/" + target
            url = URL(str(self.base_url) + path, encoded="%" in path)
        if url.origin() != self.base_url.origin():
            raise BadResponse(
                f"{self.vendor}: refusing to follow {url.origin()} (not {self.base_url.origin()})"
            )
        return url.update_query(dict(params)) if params else url

    # --- the request ----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        target: str | URL,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Mapping[str, str] | None = None,
        deadline_s: float | None = None,
    ) -> ApiResponse:
        """Send one request (with retries) and return the 2xx answer; raise our errors otherwise."""
        url = self.url_for(target, params)
        loop = asyncio.get_running_loop()
        budget_s = self.deadline_s if deadline_s is None else deadline_s
        deadline = loop.time() + budget_s
        attempt = 0
        reauthorised = False
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Unreachable(f"{self._where(method, url)}: no answer within {budget_s:g}s")
            token = await self._auth.token() if self._auth is not None else None
            try:
                async with asyncio.timeout(remaining):
                    if self._budget is not None:
                        await self._budget.acquire()
                    response = await self._send(method, url, token, json_body, data)
            except TimeoutError:
                raise Unreachable(f"{self._where(method, url)}: no answer within {budget_s:g}s") from None
            except aiohttp.ClientError as err:
                error: DriverError = Unreachable(f"{self._where(method, url)}: {type(err).__name__}: {err}")
                retry_after = None
            else:
                if 200 <= response.status < 300:
                    return response
                if response.status == 401 and token is not None and not reauthorised:
                    assert self._auth is not None
                    self._auth.invalidate(token)  # expired: one more try with a new token
                    reauthorised = True
                    continue
                error, retry_after = self._failure(method, url, response, _sent_secrets(token, data))
            wait = self._wait_before_retry(attempt, error, retry_after, deadline - loop.time())
            log.info(
                "api_retry",
                vendor=self.vendor,
                method=method,
                path=url.path,
                attempt=attempt + 1,
                wait_s=round(wait, 3),
                reason=str(error),
            )
            self.retries_made += 1
            self.waited_s += wait
            await self._sleep(wait)
            attempt += 1

    def _failure(
        self, method: str, url: URL, response: ApiResponse, secrets: tuple[str, ...]
    ) -> tuple[DriverError, float | None]:
        """The error for a non-2xx answer; raised at once unless the status may be retried."""
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        error = error_for_status(
            self.vendor,
            method,
            url.path,
            status=response.status,
            headers=response.headers,
            body=response.body,
            retry_after_s=retry_after,
            secrets=secrets,
        )
        if response.status not in RETRY_STATUSES:
            raise error
        return error, retry_after

    def _wait_before_retry(
        self, attempt: int, error: DriverError, retry_after: float | None, remaining_s: float
    ) -> float:
        """Seconds to wait before the next attempt, or raise ``error`` when there is none: retries
        used up, a ``Retry-After`` longer than we honour, or a wait that would outlast the deadline
        (the next poll comes sooner)."""
        if attempt >= self.policy.retries:
            raise error
        if retry_after is not None and retry_after > self.policy.max_retry_after_s:
            raise error
        wait = self.policy.delay(attempt, retry_after)
        if wait >= remaining_s:
            raise error
        return wait

    async def _send(
        self, method: str, url: URL, token: str | None, json_body: Any, data: Mapping[str, str] | None
    ) -> ApiResponse:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if self._rid_header:
            headers[self._rid_header] = str(uuid.uuid4())
        self.requests_made += 1
        async with self._session.request(
            method, url, headers=headers, json=json_body, data=data, allow_redirects=False
        ) as raw:
            received = await read_capped(raw, self.max_body_bytes)
            if received is None:
                rid = request_id(raw.headers, None)
                raise BadResponse(
                    f"{self._where(method, url)} answered {raw.status} with a body over "
                    f"{self.max_body_bytes} bytes" + (f" (request-id {rid})" if rid else "")
                )
            self.bytes_read += len(received)
            text = received.decode("utf-8", errors="replace")  # JSON is UTF-8 (RFC 8259)
            body = self._parse(method, url, raw.status, raw.headers, text)
            return ApiResponse(raw.status, raw.headers, body, request_id(raw.headers, body), url)

    def _parse(self, method: str, url: URL, status: int, headers: CIMultiDictProxy[str], text: str) -> Any:
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except RecursionError:  # "[[[[…": nesting deeper than the parser's stack
            raise BadResponse(
                f"{self._where(method, url)} answered {status} with JSON nested too deeply"
            ) from None
        except ValueError:
            if 200 <= status < 300:
                rid = request_id(headers, None)
                raise BadResponse(
                    f"{self._where(method, url)} answered {status} with a body that is not JSON"
                    + (f" (request-id {rid})" if rid else "")
                ) from None
            return None  # an error page from a proxy: the status says enough

    def _where(self, method: str, url: URL) -> str:
        return f"{self.vendor} {method} {url.path}"

    async def get_json(self, target: str | URL, params: Mapping[str, str] | None = None) -> Any:
        return (await self.request("GET", target, params=params)).body
