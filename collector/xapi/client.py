"""The codec's HTTP XML API: ``GET /status.xml`` and ``POST /putxml``, paced, errors translated.

aiohttp's exceptions stop here: a refused login is :class:`AuthFailed`, no answer (or a full queue
after ``busy_retries`` resends) is :class:`Unreachable`, anything else unusable is
:class:`BadResponse`. Messages name the host and path, never the password.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from collector.errors import AuthFailed, BadResponse, Unreachable
from collector.http.client import read_capped
from collector.xapi import xml
from collector.xapi.options import XapiOptions
from collector.xapi.pacer import Pacer
from runtime.backoff import backoff_delay

# A codec's whole status tree is well under 1 MB; a hostile one must not fill the agent's memory.
MAX_XML_BYTES = 8 * 1024 * 1024


class XapiClient:
    def __init__(self, options: XapiOptions, pacer: Pacer | None = None) -> None:
        self.options = options
        self.pacer = pacer or Pacer(options.min_interval_s)
        self.requests = 0
        self.busy = 0  # 503 answers (queue full) seen
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url=self.options.base_url,
                auth=aiohttp.BasicAuth(self.options.user, self.options.password.get_secret_value()),
                timeout=aiohttp.ClientTimeout(total=self.options.timeout_s),
                connector=aiohttp.TCPConnector(ssl=self.options.verify_tls, limit=1),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def status(self) -> dict[str, Any]:
        """The whole status tree (one request: cheaper for the codec than one per subtree)."""
        body = await self._request("GET", "/status.xml")
        root = xml.parse(body, f"{self.options.host} /status.xml")
        if root.tag != "Status":
            raise BadResponse(f"{self.options.host} /status.xml: root element {root.tag}, expected Status")
        return xml.to_tree(root)

    async def command(self, path: str, arguments: dict[str, str]) -> dict[str, str]:
        """Run ``xCommand <path>``; raises :class:`BadResponse` when the codec refuses it."""
        body = await self._request("POST", "/putxml", data=xml.command_xml(path, arguments))
        return xml.command_result(body, path)

    async def _request(self, method: str, path: str, data: bytes | None = None) -> bytes:
        where = f"{self.options.host} {path}"
        headers = {"Content-Type": "text/xml"} if data is not None else {}
        for attempt in range(self.options.busy_retries + 1):
            async with self.pacer.slot():
                self.requests += 1
                try:
                    async with self._client().request(method, path, data=data, headers=headers) as response:
                        status = response.status
                        body = await read_capped(response, MAX_XML_BYTES)
                except (aiohttp.ClientError, TimeoutError) as err:
                    raise Unreachable(f"{where}: {_why(err, self.options.base_url)}") from None
            if status in {401, 403}:
                raise AuthFailed(f"{where}: the codec refused user {self.options.user!r} (HTTP {status})")
            if status == 503:
                self.busy += 1
                if attempt < self.options.busy_retries:
                    await asyncio.sleep(backoff_delay(attempt, max(self.options.min_interval_s, 0.05), 30.0))
                    continue
                raise Unreachable(f"{where}: the codec's request queue stayed full (HTTP 503)")
            if status >= 400:
                raise BadResponse(f"{where}: HTTP {status}")
            if body is None:
                raise BadResponse(f"{where}: answer over {MAX_XML_BYTES} bytes")
            return body
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _why(err: BaseException, base_url: str) -> str:
    """What the operator can act on: a certificate that did not verify and a TLS handshake with
    something that is no TLS server (a codec serving plain HTTP) are said as such."""
    name = type(err).__name__
    if isinstance(err, aiohttp.ClientConnectorCertificateError):
        return (
            f"{base_url}: the codec's certificate did not verify ({name}): install a trusted one,"
            " or set verify_tls = false knowingly (fernwart probe xapi --insecure)"
        )
    if isinstance(err, aiohttp.ClientSSLError):
        return (
            f"{base_url}: TLS handshake failed ({name}): does the codec serve plain HTTP?"
            ' (source option scheme = "http"; fernwart probe xapi --http)'
        )
    if isinstance(err, aiohttp.ClientConnectorError):
        return f"{base_url}: connection refused or no route ({name})"
    return f"{base_url}: no answer ({name})"
