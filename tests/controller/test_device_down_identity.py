"""A device that goes down keeps who it is, and so its findings.

When a source cannot read a device (a codec rebooting into an update, a tenant's device gone
from the listing), the agent sends an observation with no identity: vendor, family and model
``unknown``, no serial, no hostname, no software. Stored over the device row, it made the codec
of tests/e2e/test_vendor_findings.py vendor ``unknown`` while it rebooted, and the catalog
dropped its findings until it was back. An unknown identity field now keeps the stored value;
a real change of identity still applies. On SQLite and PostgreSQL, through the store and the
matching service.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from collector.model import Health, HealthStatus, Identity, Observation
from controller.matching import MatchingService
from controller.storage.reads import DeviceFilter
from lab.fakes.xapi import default_tree
from tests.controller.conftest import obs_age, open_store
from tests.controller.test_component_findings import findings_of, flush
from tests.e2e.vendor_fakes import ROOMOS_ADVISORY, ROOMOS_ADVISORY_FILE

CODEC = "codec-1"


def codec(version: str, age_s: float) -> Observation:
    """What the xAPI source reports of a reachable Room Kit Pro (its own observation builder)."""
    from collector.xapi.options import XapiOptions  # noqa: PLC0415 - only this helper needs it
    from collector.xapi.source import XapiSource  # noqa: PLC0415

    source = XapiSource(CODEC, XapiOptions(host="192.0.2.10", user="admin", password="x"))
    return source.observation(default_tree(version)).model_copy(update={"observed_at": obs_age(age_s)})


def down(age_s: float) -> Observation:
    """What the agent's poller sends when the source could not read the device."""
    return Observation(
        device_id=CODEC,
        driver="xapi",
        observed_at=obs_age(age_s),
        reachable=False,
        health=Health(status=HealthStatus.DOWN),
        errors=["192.0.2.10 /status.xml: no answer (ServerDisconnectedError)"],
    )


async def device_row(store: Any, device_id: str) -> dict[str, Any]:
    rows, _total = await store.list_devices(DeviceFilter(None, None, None, None, 100, 0))
    (row,) = [r for r in rows if r["device_id"] == device_id]
    return dict(row)


async def test_a_device_down_keeps_its_identity_and_findings(database_url: str) -> None:
    async with open_store(database_url) as store:
        service = MatchingService(store, CollectorRegistry())
        await service.start()
        await service.add_advisory(ROOMOS_ADVISORY_FILE.read_bytes(), "test")
        await flush(store, service, 0, [codec("11.17.2.2", 60)])
        before = await device_row(store, CODEC)
        assert (before["vendor"], before["family"], before["model"]) == (
            "cisco",
            "roomos",
            "Cisco Room Kit Pro",
        )
        (finding,) = await findings_of(service, CODEC)
        assert (finding["advisory_id"], finding["status"]) == (ROOMOS_ADVISORY, "affected")

        await flush(store, service, 1, [down(30)])
        row = await device_row(store, CODEC)
        assert (row["vendor"], row["family"], row["model"], row["serial"], row["hostname"]) == (
            "cisco",
            "roomos",
            "Cisco Room Kit Pro",
            "FOC2433P1DK",
            "192.0.2.10",
        )
        assert (row["reachable"], row["health"]) == (False, "down")  # the state itself is the new one
        assert row["firmware_version"] == "RoomOS 11.17.2.2"
        still = [(f["advisory_id"], f["status"], f["version"]) for f in await findings_of(service, CODEC)]
        assert still == [(ROOMOS_ADVISORY, "affected", "RoomOS 11.17.2.2")]

        # Back with a new version: matched again as itself.
        await flush(store, service, 2, [codec("11.22.1.4", 10)])
        row = await device_row(store, CODEC)
        assert (row["vendor"], row["reachable"], row["firmware_version"]) == (
            "cisco",
            True,
            "RoomOS 11.22.1.4",
        )
        (finding,) = await findings_of(service, CODEC)
        assert (finding["status"], finding["version"]) == ("unknown", "RoomOS 11.22.1.4")


async def test_a_known_identity_still_changes(database_url: str) -> None:
    """Only ``unknown`` is kept over: a device re-identified as another model is stored as that."""
    async with open_store(database_url) as store:
        service = MatchingService(store, CollectorRegistry())
        await service.start()
        await flush(store, service, 0, [codec("11.17.2.2", 60)])
        moved = codec("11.17.2.2", 30)
        moved = moved.model_copy(
            update={
                "identity": Identity(vendor="cisco", family="roomos", model="Cisco Room Bar", serial="NEW1")
            }
        )
        await flush(store, service, 1, [moved])
        row = await device_row(store, CODEC)
        assert (row["model"], row["serial"], row["hostname"]) == ("Cisco Room Bar", "NEW1", "192.0.2.10")
