"""Every software component of an observation reaches the store as its own row, with a history
on change as for the firmware, on SQLite and PostgreSQL; revision 0008 goes up and down."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from collector.model import Identity, Observation, SoftwareComponent
from collector.wire import encode
from controller.storage import DeviceFilter, Received, migrate
from controller.storage import models as m
from controller.storage.rules import component_changes
from tests.controller.conftest import make_batch, make_observation, obs_age, open_store

TEAMS = "teams-rooms"


def room(
    device_id: str, age_s: float, *components: tuple[str, str, str | None], reachable: bool = True
) -> Observation:
    return Observation(
        device_id=device_id,
        driver="graph",
        observed_at=obs_age(age_s),
        reachable=reachable,
        identity=Identity(vendor="Lenovo", family="teams-rooms", model="ThinkSmart Core"),
        software=[SoftwareComponent(name=n, version=v, scheme=s) for n, v, s in components],
    )


def _received(message: Any) -> Received:
    return Received(f"fernwart/v1/{message.site_id}/obs", encode(message), datetime.now(UTC), message=message)


async def _device(store: Any, device_id: str) -> dict[str, Any]:
    rows, _ = await store.list_devices(DeviceFilter())
    pk = next(row["id"] for row in rows if row["device_id"] == device_id)
    device = await store.get_device(pk)
    assert device is not None
    return dict(device)


async def test_each_component_is_a_row_with_history_on_change(database_url: str) -> None:
    async with open_store(database_url) as store:
        flushes = [
            [room("mtr-1", 100, ("firmware", "10.0.22631", None), ("teams_app", "4.19.57.0", TEAMS))],
            # Same versions again, and a down observation that reports no software: no change.
            [room("mtr-1", 90, ("firmware", "10.0.22631", None), ("teams_app", "4.19.57.0", TEAMS))],
            [room("mtr-1", 85, reachable=False)],
            # The app is updated, a peripheral appears; the firmware is not reported this time.
            [room("mtr-1", 80, ("teams_app", "5.2.115.0", TEAMS), ("camera", "1.4", None))],
        ]
        for seq, observations in enumerate(flushes):
            await store.write_flush([_received(make_batch("s", "a", seq, observations))])
        device = await _device(store, "mtr-1")
        assert device["components"] == [
            {"component": "camera", "version": "1.4", "scheme": None},
            {"component": "firmware", "version": "10.0.22631", "scheme": None},
            {"component": "teams_app", "version": "5.2.115.0", "scheme": TEAMS},
        ]
        history = [(h["component"], h["version"]) for h in device["component_history"]]
        assert sorted(history) == sorted(
            [
                ("firmware", "10.0.22631"),
                ("teams_app", "4.19.57.0"),
                ("teams_app", "5.2.115.0"),
                ("camera", "1.4"),
            ]
        )
        assert [h["version"] for h in device["component_history"] if h["component"] == "teams_app"] == [
            "4.19.57.0",
            "5.2.115.0",
        ]
        assert device["firmware_version"] == "10.0.22631"  # the firmware column as before


async def test_one_flush_with_several_observations_keeps_the_newest_and_every_change(
    database_url: str,
) -> None:
    """Out of order in one flush and across flushes: the row holds the newest observation's
    version, a late older observation does not move it back, the history is in observed order."""
    async with open_store(database_url) as store:
        first = [
            room("mtr-2", 50, ("teams_app", "5.1.24.0", TEAMS)),
            room("mtr-2", 70, ("teams_app", "4.19.57.0", TEAMS)),
            room("mtr-2", 60, ("teams_app", "5.0.305.0", TEAMS)),
        ]
        await store.write_flush([_received(make_batch("s", "a", 0, first))])
        late = [room("mtr-2", 65, ("teams_app", "4.0.1.0", TEAMS))]
        await store.write_flush([_received(make_batch("s", "a", 1, late))])
        device = await _device(store, "mtr-2")
        assert device["components"] == [{"component": "teams_app", "version": "5.1.24.0", "scheme": TEAMS}]
        # Oldest first by observed time; the late one compared with the stored version, as the
        # firmware history does, so it is a change too.
        versions = [h["version"] for h in device["component_history"]]
        assert versions == ["4.19.57.0", "4.0.1.0", "5.0.305.0", "5.1.24.0"]


async def test_devices_without_software_write_no_component_rows(database_url: str) -> None:
    async with open_store(database_url) as store:
        observations = [make_observation(f"d{i}", firmware=None) for i in range(5)]
        await store.write_flush([_received(make_batch("s", "a", 0, observations))])
        assert await store.count(m.DEVICE_COMPONENTS) == 0
        assert await store.count(m.COMPONENT_HISTORY) == 0
        observations = [make_observation(f"d{i}", firmware="11.5.1") for i in range(5)]
        await store.write_flush([_received(make_batch("s", "a", 1, observations))])
        assert await store.count(m.DEVICE_COMPONENTS) == 5
        await store.write_flush([_received(make_batch("s", "a", 2, observations))])  # unchanged
        assert await store.count(m.COMPONENT_HISTORY) == 5


async def test_revision_0008_up_and_down_keeps_firmware_findings(database_url: str) -> None:
    async with open_store(database_url) as store:
        await store.write_flush(
            [_received(make_batch("s", "a", 0, [room("m", 10, ("teams_app", "5.0.1.0", TEAMS))]))]
        )
        await migrate.downgrade(store.engine, "0007")
        async with store.engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
            columns = await conn.run_sync(
                lambda sync: [c["name"] for c in sa.inspect(sync).get_columns("findings")]
            )
        assert "device_components" not in tables
        assert "component" not in columns
        await migrate.upgrade(store.engine)
        assert await store.count(m.DEVICE_COMPONENTS) == 0  # rebuilt from the next observations
        await store.write_flush(
            [_received(make_batch("s", "a", 1, [room("m", 5, ("teams_app", "5.0.1.0", TEAMS))]))]
        )
        assert await store.count(m.DEVICE_COMPONENTS) == 1


COMPONENT = st.tuples(st.sampled_from(["firmware", "teams_app", "camera"]), st.sampled_from(["1", "2", "3"]))


@given(
    st.dictionaries(st.sampled_from(["firmware", "teams_app"]), st.sampled_from(["1", "2"])),
    st.lists(st.tuples(st.integers(0, 20), st.lists(COMPONENT, max_size=3)), max_size=8),
)
def test_component_history_is_one_row_per_change_per_component(
    stored: dict[str, str], seen: list[tuple[int, list[tuple[str, str]]]]
) -> None:
    """Per component, the rule is the firmware rule: a row where the version differs from the one
    before it (the stored one first), in observed order; the state is the last version seen."""
    state0 = {name: (version, None) for name, version in stored.items()}
    entries = [(us, [(name, version, None) for name, version in parts]) for us, parts in seen]
    history, state = component_changes(state0, entries)
    ordered = sorted(entries, key=lambda e: e[0])
    for name in ("firmware", "teams_app", "camera"):
        versions = [v for _, parts in ordered for n, v, _ in parts if n == name]
        expected, last = [], stored.get(name)
        for version in versions:
            if version != last:
                expected.append(version)
                last = version
        assert [v for _, n, v, _ in history if n == name] == expected
        assert state.get(name, (None, None))[0] == last


@pytest.mark.parametrize("scheme", [None, TEAMS])
def test_a_new_scheme_alone_changes_the_row_not_the_history(scheme: str | None) -> None:
    history, state = component_changes({"teams_app": ("5.0", "other")}, [(1, [("teams_app", "5.0", scheme)])])
    assert history == []
    assert state == {"teams_app": ("5.0", scheme)}


async def test_a_change_and_back_within_one_flush_is_history_on_both_writers(database_url: str) -> None:
    """The newest observation reports the stored components again, an older one of the same flush
    another version: the device still counts as changed (PostgreSQL's device_software filter
    looks at every observation of a device, not only its newest)."""
    async with open_store(database_url) as store:
        await store.write_flush(
            [_received(make_batch("s", "a", 0, [room("m", 100, ("teams_app", "5.0", TEAMS))]))]
        )
        flush = [room("m", 50, ("teams_app", "5.1", TEAMS)), room("m", 40, ("teams_app", "5.0", TEAMS))]
        await store.write_flush([_received(make_batch("s", "a", 1, flush))])
        device = await _device(store, "m")
        assert [h["version"] for h in device["component_history"]] == ["5.0", "5.1", "5.0"]
        assert device["components"] == [{"component": "teams_app", "version": "5.0", "scheme": TEAMS}]
