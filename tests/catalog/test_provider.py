"""Trusted-provider fetch against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

import pytest
from aiohttp import web

from firmware_catalog import Catalog
from firmware_catalog.errors import FetchError
from firmware_catalog.provider import fetch_provider, import_from_provider
from tests.catalog.conftest import CSAF_DIR

DOCS = sorted(CSAF_DIR.glob("*.json"))


@dataclass
class Provider:
    """A CSAF trusted provider: ROLIE feed under /rolie, a directory under /dir; it records requests."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, conditional header or "")
    base: str = ""

    def put(self, path: str, data: bytes, *, sha: str | None = "sha256", corrupt: bool = False) -> None:
        self.files[path] = data
        if sha:
            digest = hashlib.new(sha, b"corrupt" if corrupt else data).hexdigest()
            self.files[f"{path}.{sha}"] = f"{digest}  {path.rsplit('/', 1)[-1]}\n".encode()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests.append((path, request.headers.get("If-None-Match", "")))
        body = self.files.get(path)
        if body is None:
            raise web.HTTPNotFound
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, headers={"ETag": etag, "Last-Modified": formatdate(usegmt=True)})

    def fetched(self, suffix: str = ".json") -> list[str]:
        return [p for p, cond in self.requests if p.endswith(suffix)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    prov = Provider()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", prov.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    prov.base = f"http://127.0.0.1:{port}"
    try:
        yield prov
    finally:
        await runner.cleanup()


def _publish_rolie(prov: Provider, docs: list[Path], updated: str = "2025-01-01T00:00:00Z") -> None:
    entries = []
    for doc in docs:
        prov.put(f"/rolie/{doc.name}", doc.read_bytes())
        entries.append(
            {
                "id": doc.stem,
                "updated": updated,
                "content": {"src": f"/rolie/{doc.name}"},
                "link": [{"rel": "self", "href": f"/rolie/{doc.name}"}],
            }
        )
    prov.files["/rolie/feed.json"] = json.dumps({"feed": {"id": "x", "entry": entries}}).encode()
    prov.files["/.well-known/csaf/provider-metadata.json"] = json.dumps(
        {
            "canonical_url": "/.well-known/csaf/provider-metadata.json",
            "distributions": [{"rolie": {"feeds": [{"url": "/rolie/feed.json", "tlp_label": "WHITE"}]}}],
            "role": "csaf_trusted_provider",
        }
    ).encode()


async def test_rolie_fetch_is_verified_and_incremental(provider: Provider, tmp_path: Path) -> None:
    _publish_rolie(provider, DOCS)
    state = tmp_path / "state.json"
    url = provider.base + "/.well-known/csaf/provider-metadata.json"
    catalog = Catalog()
    async with asyncio.timeout(30):
        imported, fetched = await import_from_provider(catalog, url, state)
    assert len(fetched.documents) == 6
    assert not fetched.errors
    assert len(imported.added) == 6
    assert len(catalog) == 6
    assert {d.hash_algorithm for d in fetched.documents} == {"sha256"}

    provider.requests.clear()
    async with asyncio.timeout(30):
        again = await fetch_provider(url, state)
    assert again.documents == ()
    assert len(again.unchanged) == 6
    assert provider.fetched() == ["/.well-known/csaf/provider-metadata.json", "/rolie/feed.json"]
    assert all(cond for _path, cond in provider.requests), "metadata and feed are conditional GETs"

    # One document changes: only it is fetched.
    changed = json.loads(DOCS[0].read_text())
    changed["document"]["tracking"]["version"] = "2"
    provider.put(f"/rolie/{DOCS[0].name}", json.dumps(changed).encode())
    feed = json.loads(provider.files["/rolie/feed.json"])
    feed["feed"]["entry"][0]["updated"] = "2025-02-01T00:00:00Z"
    provider.files["/rolie/feed.json"] = json.dumps(feed).encode()
    provider.requests.clear()
    async with asyncio.timeout(30):
        imported, fetched = await import_from_provider(catalog, url, state)
    assert [d.url.rsplit("/", 1)[-1] for d in fetched.documents] == [DOCS[0].name]
    assert imported.replaced == (DOCS[0].stem,)


async def test_directory_with_index_and_bad_hash(provider: Provider, tmp_path: Path) -> None:
    good, bad, unhashed = DOCS[:3]
    provider.put(f"/dir/2020/{good.name}", good.read_bytes(), sha="sha512")
    provider.put(f"/dir/2020/{bad.name}", bad.read_bytes(), corrupt=True)
    provider.put(f"/dir/2020/{unhashed.name}", unhashed.read_bytes(), sha=None)
    provider.files["/dir/index.txt"] = "\n".join(f"2020/{d.name}" for d in (good, bad, unhashed)).encode()
    provider.files["/pm.json"] = json.dumps({"distributions": [{"directory_url": "/dir/"}]}).encode()
    async with asyncio.timeout(30):
        report = await fetch_provider(provider.base + "/pm.json", tmp_path / "s.json")
    assert [d.url.rsplit("/", 1)[-1] for d in report.documents] == [good.name]
    assert report.documents[0].hash_algorithm == "sha512"
    reasons = sorted(str(e) for e in report.errors)
    assert any("sha256 mismatch" in r and bad.name in r for r in reasons), reasons
    assert any("no .sha512 or .sha256" in r and unhashed.name in r for r in reasons), reasons
    # index.txt has no times: the second run asks again, conditionally, and gets 304s.
    provider.requests.clear()
    async with asyncio.timeout(30):
        second = await fetch_provider(provider.base + "/pm.json", tmp_path / "s.json")
    assert second.documents == ()
    assert f"/dir/2020/{good.name}" in [p for p, cond in provider.requests if cond]


async def test_changes_csv_is_preferred(provider: Provider, tmp_path: Path) -> None:
    doc = DOCS[0]
    provider.put(f"/dir/2021/{doc.name}", doc.read_bytes())
    provider.files["/dir/changes.csv"] = f'"2021/{doc.name}","2021-05-01T00:00:00Z"\n'.encode()
    provider.files["/pm.json"] = json.dumps({"distributions": [{"directory_url": "/dir"}]}).encode()
    async with asyncio.timeout(30):
        first = await fetch_provider(provider.base + "/pm.json", tmp_path / "s.json")
        second = await fetch_provider(provider.base + "/pm.json", tmp_path / "s.json")
    assert len(first.documents) == 1
    assert second.documents == ()
    assert "/dir/index.txt" not in [p for p, _ in provider.requests]


async def test_unreachable_provider_is_a_fetch_error(tmp_path: Path) -> None:
    with pytest.raises(FetchError):
        async with asyncio.timeout(30):
            await fetch_provider(f"http://127.0.0.1:{_free_port()}/pm.json", tmp_path / "s.json", timeout_s=5)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with the cryptography package."""
    import datetime as dt  # noqa: PLC0415
    import ipaddress  # noqa: PLC0415

    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    pytest.importorskip(
        "cryptography", reason="the TLS test makes its certificate with the cryptography package"
    )
    cert_path, key_path = _self_signed(tmp_path)
    prov = Provider()
    _publish_rolie(prov, DOCS[:1])
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", prov.handle)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_path, key_path)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_ctx).start()
    url = f"https://127.0.0.1:{port}/.well-known/csaf/provider-metadata.json"
    try:
        with pytest.raises(FetchError):  # not trusted by default
            async with asyncio.timeout(30):
                await fetch_provider(url, tmp_path / "a.json")
        client_ctx = ssl.create_default_context(cafile=str(cert_path))
        async with asyncio.timeout(30):
            report = await fetch_provider(url, tmp_path / "b.json", ssl_context=client_ctx)
        assert len(report.documents) == 1
    finally:
        await runner.cleanup()
