"""Fetch a CSAF trusted provider over HTTPS (CSAF 2.0 section 7): incremental and verified.

``provider-metadata.json`` → ``distributions`` → ROLIE feeds (``rolie.feeds[].url``) and/or a
directory (``directory_url`` with ``changes.csv``, else ``index.txt``). Every document is checked
against its ``.sha512`` or ``.sha256`` file before it is handed out. Incremental: a small JSON
state file (the caller passes its path) remembers, per URL, the ETag / Last-Modified of the last
answer and the feed's ``updated`` time; unchanged documents are not fetched again, and every GET
is conditional (If-None-Match / If-Modified-Since), so an unchanged feed costs one 304.

Nothing here touches the catalog: ``fetch_provider`` returns the new and changed documents, and
``import_from_provider`` adds them to a :class:`Catalog`.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp

from firmware_catalog.catalog import Catalog, ImportReport
from firmware_catalog.csaf import MAX_DOCUMENT_BYTES
from firmware_catalog.errors import FetchError

MAX_INDEX_BYTES = 32 * 1024 * 1024
_HASHES = ("sha512", "sha256")


@dataclass(frozen=True, slots=True)
class FetchedDocument:
    url: str
    data: bytes
    hash_algorithm: str  # the hash file that verified it


@dataclass(frozen=True, slots=True)
class FetchReport:
    documents: tuple[FetchedDocument, ...] = ()  # new or changed, verified
    unchanged: tuple[str, ...] = ()  # URLs skipped because nothing changed
    errors: tuple[FetchError, ...] = ()  # one per document or feed that failed; the rest went on


@dataclass(slots=True)
class _State:
    """What the previous run saw. Stored as JSON: {"urls": {url: {"etag", "last_modified", "updated"}}}."""

    urls: dict[str, dict[str, str]] = field(default_factory=dict)
    cached: dict[str, str] = field(default_factory=dict)  # small bodies (metadata, feeds) for 304 answers

    @classmethod
    def load(cls, path: Path | None) -> _State:
        if path is None or not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise FetchError(f"state file {path}: {err}") from err
        if not isinstance(data, dict):
            raise FetchError(f"state file {path}: expected an object")
        urls = data.get("urls", {})
        cached = data.get("cached", {})
        return cls(urls if isinstance(urls, dict) else {}, cached if isinstance(cached, dict) else {})

    def save(self, path: Path | None) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"urls": self.urls, "cached": self.cached}, handle)
        Path(tmp).replace(path)


class _Client:
    def __init__(
        self, session: aiohttp.ClientSession, state: _State, timeout_s: float, ssl_context: Any
    ) -> None:
        self.session = session
        self.state = state
        self.timeout_s = timeout_s
        self.ssl = ssl_context

    async def get(  # noqa: C901 - one branch per HTTP outcome
        self, url: str, *, limit: int, conditional: bool = True
    ) -> tuple[int, bytes | None]:
        """GET with conditional headers. Returns (status, body); body is None for 304 and 404."""
        if not url.startswith(("https://", "http://")):
            raise FetchError(f"{url}: only http(s) URLs are fetched")
        headers = {}
        seen = self.state.urls.get(url, {})
        if conditional and seen.get("etag"):
            headers["If-None-Match"] = seen["etag"]
        if conditional and seen.get("last_modified"):
            headers["If-Modified-Since"] = seen["last_modified"]
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self.session.get(
                    url, headers=headers, ssl=self.ssl, allow_redirects=True
                ) as response:
                    if response.status == 304:
                        return 304, None
                    if response.status == 404:
                        return 404, None
                    if response.status != 200:
                        raise FetchError(f"{url}: HTTP {response.status}")
                    body = await response.content.read(limit + 1)
                    if len(body) > limit:
                        raise FetchError(f"{url}: larger than {limit} bytes")
                    entry = dict(seen)
                    for header, key in (("ETag", "etag"), ("Last-Modified", "last_modified")):
                        value = response.headers.get(header)
                        if value:
                            entry[key] = value
                        else:
                            entry.pop(key, None)
                    self.state.urls[url] = entry
                    return 200, body
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as err:
            raise FetchError(f"{url}: {type(err).__name__}: {err}") from err

    async def get_cached(self, url: str) -> bytes:
        """A small resource (metadata, feed, index) that we keep a copy of to answer 304s."""
        status, body = await self.get(url, limit=MAX_INDEX_BYTES, conditional=url in self.state.cached)
        if status == 304:
            return self.state.cached[url].encode("utf-8")
        if body is None:
            raise FetchError(f"{url}: HTTP {status}")
        self.state.cached[url] = body.decode("utf-8", "replace")
        return body


async def fetch_provider(
    metadata_url: str,
    state_path: str | Path | None = None,
    *,
    session: aiohttp.ClientSession | None = None,
    ssl_context: ssl.SSLContext | bool | None = None,
    timeout_s: float = 30.0,
) -> FetchReport:
    """Fetch new and changed documents of the provider whose metadata is at ``metadata_url``.

    Raises :class:`FetchError` only if the provider metadata itself cannot be read; a failing
    feed, document or hash is reported in ``FetchReport.errors`` and the rest goes on. The state
    file is written only after the run (atomically), so an interrupted run starts over.
    """
    path = Path(state_path) if state_path is not None else None
    state = _State.load(path)
    own = session is None
    session = session or aiohttp.ClientSession()
    try:
        client = _Client(session, state, timeout_s, ssl_context)
        report = await _run(client, metadata_url)
    finally:
        if own:
            await session.close()
    state.save(path)
    return report


async def _run(client: _Client, metadata_url: str) -> FetchReport:  # noqa: C901 - distributions, then documents
    metadata = _json(await client.get_cached(metadata_url), metadata_url)
    distributions = metadata.get("distributions") if isinstance(metadata, dict) else None
    if not isinstance(distributions, list) or not distributions:
        raise FetchError(f"{metadata_url}: provider metadata has no distributions")
    errors: list[FetchError] = []
    listed: dict[str, str] = {}  # document URL → updated time (as the feed says)
    for index, dist in enumerate(distributions):
        if not isinstance(dist, dict):
            errors.append(FetchError(f"{metadata_url}: distributions[{index}]: expected an object"))
            continue
        feeds = (dist.get("rolie") or {}).get("feeds", []) if isinstance(dist.get("rolie"), dict) else []
        for feed in feeds if isinstance(feeds, list) else []:
            url = feed.get("url") if isinstance(feed, dict) else None
            if isinstance(url, str):
                await _collect(errors, listed, _rolie(client, urljoin(metadata_url, url)))
        directory = dist.get("directory_url")
        if isinstance(directory, str):
            await _collect(
                errors, listed, _directory(client, urljoin(metadata_url, directory.rstrip("/") + "/"))
            )
    documents: list[FetchedDocument] = []
    unchanged: list[str] = []
    for url, updated in sorted(listed.items()):
        seen = client.state.urls.get(url, {})
        if updated and seen.get("updated") == updated:
            unchanged.append(url)
            continue
        try:
            fetched = await _document(client, url)
        except FetchError as err:
            errors.append(err)
            client.state.urls.pop(url, None)  # try again next time
            continue
        if fetched is None:
            unchanged.append(url)
        else:
            documents.append(fetched)
        if updated:
            client.state.urls.setdefault(url, {})["updated"] = updated
    return FetchReport(tuple(documents), tuple(unchanged), tuple(errors))


async def _collect(errors: list[FetchError], listed: dict[str, str], source: Any) -> None:
    try:
        listed.update(await source)
    except FetchError as err:
        errors.append(err)


async def _rolie(client: _Client, feed_url: str) -> dict[str, str]:
    """ROLIE feed (RFC 8322, CSAF 7.1.20): entry → (document URL, updated)."""
    feed = _json(await client.get_cached(feed_url), feed_url)
    entries = feed.get("feed", {}).get("entry", []) if isinstance(feed, dict) else []
    found: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        href = (entry.get("content") or {}).get("src") if isinstance(entry.get("content"), dict) else None
        if not href:
            links = entry.get("link", [])
            href = next(
                (lk.get("href") for lk in links if isinstance(lk, dict) and lk.get("rel") == "self"), None
            )
        if isinstance(href, str):
            updated = entry.get("updated")
            found[urljoin(feed_url, href)] = updated if isinstance(updated, str) else ""
    return found


async def _directory(client: _Client, base: str) -> dict[str, str]:
    """Directory distribution (CSAF 7.1.13-7.1.16): changes.csv (path, time), else index.txt (paths)."""
    status, body = await client.get(urljoin(base, "changes.csv"), limit=MAX_INDEX_BYTES, conditional=False)
    if status == 200 and body is not None:
        rows = csv.reader(io.StringIO(body.decode("utf-8", "replace")))
        return {
            urljoin(base, row[0]): row[1] if len(row) > 1 else "" for row in rows if row and row[0].strip()
        }
    status, body = await client.get(urljoin(base, "index.txt"), limit=MAX_INDEX_BYTES, conditional=False)
    if status != 200 or body is None:
        raise FetchError(f"{base}: neither changes.csv nor index.txt")
    lines = body.decode("utf-8", "replace").splitlines()
    return {urljoin(base, line.strip()): "" for line in lines if line.strip()}


async def _document(client: _Client, url: str) -> FetchedDocument | None:
    status, body = await client.get(url, limit=MAX_DOCUMENT_BYTES)
    if status == 304:
        return None
    if body is None:
        raise FetchError(f"{url}: HTTP {status}")
    for algorithm in _HASHES:
        hash_status, hash_body = await client.get(f"{url}.{algorithm}", limit=4096, conditional=False)
        if hash_status != 200 or hash_body is None:
            continue
        expected = hash_body.decode("ascii", "replace").split()
        digest = hashlib.new(algorithm, body).hexdigest()
        if not expected or expected[0].lower() != digest:
            raise FetchError(
                f"{url}: {algorithm} mismatch (file says {expected[0][:16] if expected else '?'}...)"
            )
        return FetchedDocument(url, body, algorithm)
    raise FetchError(f"{url}: no .sha512 or .sha256 file to verify it")


def _json(body: bytes, url: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as err:
        raise FetchError(f"{url}: not JSON: {err}") from err


async def import_from_provider(
    catalog: Catalog,
    metadata_url: str,
    state_path: str | Path | None = None,
    **kwargs: Any,
) -> tuple[ImportReport, FetchReport]:
    """Fetch, then add what came back to ``catalog``. Documents are validated as in ``Catalog.add``."""
    fetched = await fetch_provider(metadata_url, state_path, **kwargs)
    report = catalog.import_documents((doc.url, doc.data) for doc in fetched.documents)
    return report, fetched
