"""Firmware vs advisory catalog: the controller's matching service.

One :class:`MatchingService` per controller process owns a :class:`firmware_catalog.Catalog` and
its :class:`firmware_catalog.Matcher`. At start it loads advisories, the KEV catalog and every
device from the database, matches the whole fleet once and rewrites the stored findings (so a
newer matcher, or a change another instance made, is reflected after a restart). After that it
recomputes incrementally:

* ingest: :meth:`on_flush` runs after each committed flush and only compares each observation's
  vendor, model, firmware and matched components (a Teams Rooms app is matched as its own
  product, see :mod:`controller.match_keys`, and its findings name the component) with what it knows (a
  dictionary lookup, no catalog work). Devices that are new or changed are queued; :meth:`run`
  re-reads them from the database, re-matches them and replaces their findings, batched;
* catalog: :meth:`add_advisory`, :meth:`remove_advisory` and :meth:`set_kev` change the catalog
  and persist, in the same transaction as the advisory, the findings of exactly the devices the
  advisory concerns (or concerned before); a KEV change rewrites every device's findings.

Every change of matcher state and the write that persists it happen under one lock, so the stored
findings always match one catalog state. Matching runs on the event loop (the Matcher is not
thread-safe); it is cheap per device because results are shared by devices alike. Decoding,
validating and parsing a document (seconds for a large one) run in a thread, before the lock.
At most ``max_advisories`` are stored: a new one beyond is refused (:class:`AdvisoryQuotaExceeded`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from collector.wire import AgentState, AgentStatus
from controller.catalog_input import CatalogMetrics, parse_advisory_body, same_document
from controller.match_keys import (
    CHANGED,
    FIRMWARE,
    Seen,
    as_device,
    component_devices,
    differs,
    matched,
    matcher_pk,
    queue_key,
)
from controller.shapes import PreparedBatch
from controller.storage.catalog_store import (
    AdvisoryQuotaExceeded,
    CatalogStore,
    DeviceRecord,
    DeviceResult,
    severity,
)
from firmware_catalog import (
    Advisory,
    Catalog,
    DocumentError,
    KevCatalog,
    Matcher,
    match_problem,
    parse_kev,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from controller.storage import Received, Store

log = structlog.get_logger(__name__)

_WRITE_CHUNK = 1000  # devices per transaction when the whole fleet is rewritten
_SETTLE_S = 0.2  # pause after a recompute of changed devices, so that the next one batches more
_RETRY_S = 1.0  # pause after a failed write before trying again
_SLICE = 200  # devices matched between two pauses for the event loop
DEFAULT_MAX_ADVISORIES = 20_000
_PROBLEM_CACHE = 100_000  # (vendor, model, firmware) combinations whose match problem is kept


class MatchingService:
    def __init__(
        self, store: Store, registry: CollectorRegistry, *, max_advisories: int = DEFAULT_MAX_ADVISORIES
    ) -> None:
        self._store = CatalogStore(store)
        self._max_advisories = max_advisories
        self.metrics = CatalogMetrics(registry)
        self.catalog = Catalog()
        self.matcher = Matcher(self.catalog)
        self._lock = asyncio.Lock()
        self._devices: dict[int, DeviceRecord] = {}
        self._known: dict[tuple[str, str], DeviceRecord] = {}
        # Per device, the matcher ids of its matched components ("<pk>/<component>").
        self._component_ids: dict[int, set[str]] = {}
        # Devices to recompute, each with what made it pending: the (firmware, vendor, model) an
        # observation reported, None for a device an agent announced, CHANGED for several.
        self._pending: dict[tuple[str, str], Seen | None] = {}
        self._wake = asyncio.Event()
        self._problems: dict[tuple[str, str, str | None, str | None], str | None] = {}

    @property
    def store(self) -> CatalogStore:
        return self._store

    # --- start ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load catalog, KEV and devices from the database; match and store the whole fleet."""
        started = time.monotonic()
        catalog = Catalog()
        skipped = 0
        for advisory_id, source, text in await self._store.advisory_documents():
            try:
                catalog.add(json.loads(text), source, validate=False)  # validated when imported
            except (DocumentError, ValueError) as err:
                skipped += 1
                log.warning("stored_advisory_unusable", advisory=advisory_id, error=str(err)[:500])
        catalog.set_kev(await self._store.kev())
        async with self._lock:
            self.catalog = catalog
            self.matcher = Matcher(catalog)
            devices = await self._store.devices()
            self._devices = {d.pk: d for d in devices}
            self._known = {d.key: d for d in devices}
            self._component_ids = {d.pk: {c.device_id for c in component_devices(d)} for d in devices}
            self.matcher.set_devices(m for d in devices for m in (as_device(d), *component_devices(d)))
            await self._persist(list(self._devices), cause="start", chunked=True)
        self.metrics.advisories.set(len(catalog))
        log.info(
            "catalog_loaded",
            advisories=len(catalog),
            skipped=skipped,
            kev_entries=len(catalog.kev),
            devices=len(devices),
            duration_s=round(time.monotonic() - started, 3),
        )

    # --- ingest ---------------------------------------------------------------------------------

    def on_flush(self, items: list[Received]) -> None:
        """After a committed flush: queue devices that are new or report another product or firmware.

        Never raises: the flush is committed, and an error here must not make ingest retry it.
        """
        try:
            self._queue_changed(items)
        except Exception:
            log.exception("flush_listener_failed", messages=len(items))

    def _queue_changed(self, items: list[Received]) -> None:
        known = self._known
        pending = self._pending
        before = len(pending)
        for item in items:
            message = item.message
            if isinstance(message, PreparedBatch):
                site = message.site_id
                for obs in message.observations:
                    key = (site, obs.device_id)
                    seen = (obs.firmware, obs.vendor, obs.model, obs.family, matched(obs.software))
                    if differs(known.get(key), seen):
                        queue_key(pending, key, seen)
            elif isinstance(message, AgentStatus) and message.state is AgentState.ONLINE:
                for device_id in {*message.devices, *message.intervals_s}:
                    key = (message.site_id, device_id)
                    if key not in known:
                        pending.setdefault(key, None)
        if len(pending) > before:
            self._wake.set()

    def _still_pending(self) -> None:
        """Drop what a recompute that just ended has covered: a flush committed while the devices
        were being read queues them again (they were not known yet, or known with the old
        firmware), though the read may well have seen that flush (under load: every device twice)."""
        known = self._known
        self._pending = {
            key: seen
            for key, seen in self._pending.items()
            if seen is CHANGED or (key not in known if seen is None else differs(known.get(key), seen))
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Recompute queued devices until ``stop`` is set; a failed write is retried."""
        while not stop.is_set():
            if not self._pending:
                waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
                self._wake.clear()
                continue
            keys, self._pending = self._pending, {}
            pause = _SETTLE_S
            try:
                await self.recompute_devices(keys)
                self._still_pending()
            except Exception as err:  # the database may be briefly away: keep the keys, try again
                for key, seen in keys.items():
                    queue_key(self._pending, key, seen)
                self.metrics.failures.inc()
                log.warning("findings_store_failed", devices=len(keys), error=str(err)[:500])
                pause = _RETRY_S
            # Let changes gather: under heavy ingest one write covers many flushes.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await stop.wait()

    async def recompute_devices(self, keys: Iterable[tuple[str, str]]) -> int:
        """Re-read the devices ``keys`` (site, device) from the database, re-match and store them."""
        records = await self._store.devices_by_keys(keys)
        async with self._lock:
            self._remember(records)
            await self._persist([r.pk for r in records], cause="device")
        return len(records)

    def _remember(self, records: Iterable[DeviceRecord]) -> None:
        for record in records:
            self._devices[record.pk] = record
            self._known[record.key] = record
            self.matcher.set_device(as_device(record))
            components = component_devices(record)
            ids = {c.device_id for c in components}
            for gone in self._component_ids.get(record.pk, set()) - ids:
                self.matcher.remove_device(gone)
            for component in components:
                self.matcher.set_device(component)
            self._component_ids[record.pk] = ids

    # --- catalog changes ------------------------------------------------------------------------

    async def add_advisory(self, body: bytes | str, source: str) -> tuple[Advisory, str, int]:
        """Add or replace one CSAF document and store it with the findings it changes.

        Returns (advisory, "added" | "replaced" | "unchanged", devices recomputed). Raises
        :class:`DocumentError` for a document the catalog rejects (nothing changes then).
        """
        try:
            # Off the event loop: a 15 MB document took 11 s to validate and parse.
            parsed, text = await asyncio.to_thread(parse_advisory_body, body, source)
        except DocumentError:
            self.metrics.imports.labels(result="rejected").inc()
            raise
        async with self._lock:
            old = self.catalog.get(parsed.id)
            if old is not None and await asyncio.to_thread(same_document, old, parsed):
                self.metrics.imports.labels(result="unchanged").inc()
                return old, "unchanged", 0
            if old is None and len(self.catalog) >= self._max_advisories:
                self.metrics.imports.labels(result="rejected").inc()
                raise AdvisoryQuotaExceeded(self._max_advisories)
            advisory, change = self.catalog.add(parsed)
            try:
                pks = await self._concerned(advisory.id)
                results = await self._results(pks)
                kev = any(cve in self.catalog.kev for cve in advisory.cves)
                await self._store.save_advisory(
                    advisory,
                    kev=kev,
                    now=datetime.now(UTC),
                    results=results,
                    text=text,
                    max_advisories=self._max_advisories,
                )
            except AdvisoryQuotaExceeded:  # counted in the database: other instances added some
                self._restore(advisory.id, old)
                self.metrics.imports.labels(result="rejected").inc()
                raise
            except BaseException:
                self._restore(advisory.id, old)
                raise
        self.metrics.imports.labels(result=change).inc()
        self.metrics.recomputed.labels(cause="advisory").inc(len(results))
        self.metrics.advisories.set(len(self.catalog))
        log.info("advisory_imported", advisory=advisory.id, result=change, devices=len(results))
        return advisory, change, len(results)

    async def remove_advisory(self, advisory_id: str) -> int | None:
        """Remove an advisory and its findings; None if there is no such advisory."""
        async with self._lock:
            old = self.catalog.get(advisory_id)
            stored = await self._store.device_pks_with_findings_of(advisory_id)
            if old is None and not stored and not await self._store.has_advisory(advisory_id):
                return None
            self.catalog.remove(advisory_id)
            try:
                results = await self._results(stored)
                await self._store.delete_advisory(advisory_id, results)
            except BaseException:
                self._restore(advisory_id, old)
                raise
        self.metrics.advisories.set(len(self.catalog))
        self.metrics.recomputed.labels(cause="advisory").inc(len(results))
        log.info("advisory_removed", advisory=advisory_id, devices=len(results))
        return len(results)

    async def set_kev(self, body: bytes | str, source: str) -> KevCatalog:
        """Replace the KEV catalog; every device's findings are rewritten. Raises :class:`DocumentError`."""
        try:
            kev = await asyncio.to_thread(parse_kev, body, source)
        except DocumentError:
            self.metrics.kev_imports.labels(result="rejected").inc()
            raise
        async with self._lock:
            old = self.catalog.kev
            self.catalog.set_kev(kev)
            flagged = {a.id for a in self.catalog if any(cve in kev for cve in a.cves)}
            try:
                await self._store.save_kev(kev, flagged, datetime.now(UTC))
            except BaseException:
                self.catalog.set_kev(old)
                raise
            await self._persist(list(self._devices), cause="kev", chunked=True)
        self.metrics.kev_imports.labels(result="accepted").inc()
        log.info("kev_imported", version=kev.version, entries=len(kev), skipped=len(kev.errors))
        return kev

    def _restore(self, advisory_id: str, old: Advisory | None) -> None:
        """Undo an in-memory catalog change whose write failed."""
        if old is None:
            self.catalog.remove(advisory_id)
        else:
            self.catalog.add(old)

    async def _concerned(self, advisory_id: str) -> set[int]:
        """Devices the advisory concerns now, plus those with stored findings about it (replaced
        revisions may concern fewer products). Their rows are re-read first: another controller
        instance may have stored a newer firmware than this one knows."""
        pks = {matcher_pk(did) for did, _verdict in self.matcher.devices_affected_by(advisory_id)}
        pks |= await self._store.device_pks_with_findings_of(advisory_id)
        fresh = [r for r in await self._store.devices_by_pks(pks) if self._devices.get(r.pk) != r]
        self._remember(fresh)
        return {pk for pk in pks if pk in self._devices}

    # --- results --------------------------------------------------------------------------------

    async def _persist(self, pks: list[int], *, cause: str, chunked: bool = False) -> None:
        started = time.monotonic()
        step = _WRITE_CHUNK if chunked else max(len(pks), 1)
        for start in range(0, len(pks), step):
            await self._store.replace_results(await self._results(pks[start : start + step]))
        self.metrics.recomputed.labels(cause=cause).inc(len(pks))
        self.metrics.seconds.labels(cause=cause).observe(time.monotonic() - started)

    async def _results(self, pks: Iterable[int]) -> list[DeviceResult]:
        """The results of ``pks``, computed on the event loop in slices with a pause between, so
        that ingest keeps receiving and writing (4,000 new devices at once took 0.3-0.7 s)."""
        now = datetime.now(UTC)
        results: list[DeviceResult] = []
        for count, pk in enumerate(sorted(pks), 1):
            if pk in self._devices:
                results.append(self._result(self._devices[pk], now))
            if count % _SLICE == 0:
                await asyncio.sleep(0)
        return results

    def _result(self, record: DeviceRecord, now: datetime) -> DeviceResult:
        device = as_device(record)
        base: dict[str, Any] = {
            "site_id": record.site_id,
            "device_id": record.device_id,
            "device_pk": record.pk,
            "tenant": record.tenant,
            "updated_at": now,
        }
        matched = [(FIRMWARE, device.software_version or None, device.device_id)]
        matched += [
            (c.device_id.split("/", 1)[1], c.software_version, c.device_id) for c in component_devices(record)
        ]
        findings = [
            {
                **base,
                "component": component,
                "version": version,
                "advisory_id": f.advisory_id,
                "cves": list(f.cves),
                "status": f.status,
                "first_fixed": f.first_fixed,
                "kev": f.kev,
                "kev_due_date": f.kev_due_date,
                "kev_ransomware": f.kev_ransomware,
                "cvss": f.cvss,
                "severity": severity(f.cvss),
                "reason": f.reason,
                "products": list(f.products),
                "fix_url": f.fix_url,
            }
            for component, version, matcher_id in matched
            for f in self.matcher.findings(matcher_id)
        ]
        combo = (record.vendor, record.model, record.firmware_version, device.family)
        if combo in self._problems:
            problem = self._problems[combo]
        else:
            if len(self._problems) > _PROBLEM_CACHE:  # firmware strings churn over the years
                self._problems.clear()
            problem = self._problems[combo] = match_problem(*combo)
        rec = self.matcher.recommend(device)
        recommendation = {
            "site_id": record.site_id,
            "device_id": record.device_id,
            "current": (record.firmware_version or "")[:1024],
            "target": rec.target,
            "reason": problem if problem is not None else rec.reason,
            "advisories": list(rec.advisories),
            "match_problem": problem,
            "updated_at": now,
        }
        return DeviceResult(record, findings, recommendation)
