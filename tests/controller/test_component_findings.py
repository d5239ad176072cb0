"""A software component is matched against the catalog by its scheme: a Teams Rooms app version
on any maker's hardware is found vulnerable like a codec firmware, and the finding names the
component. On SQLite and PostgreSQL, through the store and the matching service."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from collector.model import Identity, Observation, SoftwareComponent
from collector.wire import encode
from controller.matching import MatchingService
from controller.storage import Received, Store
from controller.storage.catalog_reads import FindingFilter
from controller.storage.records import prepared
from tests.controller.conftest import make_batch, make_observation, obs_age, open_store

ADVISORY = "test-msrc-teams-rooms-2026-0001"


def teams_rooms_advisory() -> dict[str, Any]:
    """A CSAF 2.0 advisory about the Teams Rooms app: versions below 5.0 affected, 5.0.111.0 fixed."""
    product = "Microsoft Teams Rooms on Windows"
    return {
        "document": {
            "category": "csaf_security_advisory",
            "csaf_version": "2.0",
            "lang": "en",
            "distribution": {"tlp": {"label": "WHITE"}},
            "publisher": {
                "category": "vendor",
                "name": "Microsoft",
                "namespace": "https://msrc.microsoft.com",
            },
            "title": "Teams Rooms app: test advisory",
            "tracking": {
                "id": ADVISORY,
                "status": "final",
                "version": "1",
                "initial_release_date": "2026-01-10T00:00:00.000Z",
                "current_release_date": "2026-01-10T00:00:00.000Z",
                "revision_history": [
                    {"number": "1", "date": "2026-01-10T00:00:00.000Z", "summary": "Initial"}
                ],
            },
        },
        "product_tree": {
            "branches": [
                {
                    "category": "vendor",
                    "name": "Microsoft",
                    "branches": [
                        {
                            "category": "product_name",
                            "name": product,
                            "branches": [
                                {
                                    "category": "product_version_range",
                                    "name": "vers:generic/<5.0.0",
                                    "product": {"name": f"{product} <5.0.0", "product_id": "P-1"},
                                },
                                {
                                    "category": "product_version",
                                    "name": "5.0.111.0",
                                    "product": {"name": f"{product} 5.0.111.0", "product_id": "P-2"},
                                },
                            ],
                        }
                    ],
                }
            ]
        },
        "vulnerabilities": [
            {
                "cve": "CVE-2026-0001",
                "product_status": {"known_affected": ["P-1"], "fixed": ["P-2"]},
                "remediations": [
                    {
                        "category": "vendor_fix",
                        "details": "Update the Teams Rooms app.",
                        "product_ids": ["P-1"],
                    }
                ],
            }
        ],
    }


def room(app: str, age_s: float) -> Observation:
    return Observation(
        device_id="mtr-1",
        driver="graph",
        observed_at=obs_age(age_s),
        identity=Identity(vendor="Lenovo", family="teams-rooms", model="ThinkSmart Core"),
        software=[
            SoftwareComponent(name="firmware", version="10.0.22631.3447", scheme="windows"),
            SoftwareComponent(name="teams_app", version=app, scheme="teams-rooms"),
        ],
    )


async def flush(store: Store, service: MatchingService, seq: int, observations: list[Observation]) -> None:
    """One flush as ingest does it, then the recompute ``run`` would do for it."""
    batch = make_batch("s", "a", seq, observations)
    items = [Received("fernwart/v1/s/obs", encode(batch), datetime.now(UTC), message=batch)]
    items = prepared(items, copy=store.dialect == "postgresql")
    await store.write_flush(items)
    service.on_flush(items)
    keys, service._pending = service._pending, {}  # what run() takes for one recompute
    await service.recompute_devices(keys)


async def findings_of(service: MatchingService, device_id: str) -> list[dict[str, Any]]:
    rows, _total = await service.store.list_findings(FindingFilter(device=device_id))
    return rows


async def test_a_teams_rooms_app_version_produces_a_finding_naming_the_component(database_url: str) -> None:
    async with open_store(database_url) as store:
        service = MatchingService(store, CollectorRegistry())
        await service.start()
        await service.add_advisory(json.dumps(teams_rooms_advisory()), "test")
        codec = make_observation("codec-1", firmware="RoomOS 11.5.1.5 8b4e1e2", vendor="cisco")
        await flush(store, service, 0, [room("4.19.57.0", 60), codec])
        (finding,) = await findings_of(service, "mtr-1")
        assert finding["advisory_id"] == ADVISORY
        assert (finding["component"], finding["version"]) == ("teams_app", "4.19.57.0")
        assert finding["status"] == "affected"
        assert finding["cves"] == ["CVE-2026-0001"]
        assert await findings_of(service, "codec-1") == []  # a Microsoft advisory says nothing of it

        # The app is updated to the fixed release: the finding is fixed, still about the component.
        await flush(store, service, 1, [room("5.0.111.0", 30)])
        (finding,) = await findings_of(service, "mtr-1")
        assert (finding["component"], finding["version"], finding["status"]) == (
            "teams_app",
            "5.0.111.0",
            "fixed",
        )


async def test_the_whole_fleet_is_matched_with_its_components_at_start(database_url: str) -> None:
    """A second controller starting on the same database reads the components back."""
    async with open_store(database_url) as store:
        first = MatchingService(store, CollectorRegistry())
        await first.start()
        await first.add_advisory(json.dumps(teams_rooms_advisory()), "test")
        await flush(store, first, 0, [room("4.19.57.0", 60)])
        second = MatchingService(store, CollectorRegistry())
        await second.start()  # rewrites every device's findings from what it loaded
        (finding,) = await findings_of(second, "mtr-1")
        assert (finding["component"], finding["status"]) == ("teams_app", "affected")
        assert second.matcher.devices_affected_by(ADVISORY)
        assert {did for did, _ in second.matcher.devices_affected_by(ADVISORY)} == {
            f"{second._known['s', 'mtr-1'].pk}/teams_app"
        }
