"""What makes the matching service recompute a device: pure comparisons of an observation with
the stored record (controller.match_keys)."""

from __future__ import annotations

from controller.match_keys import CHANGED, differs, planned_software, queue_key
from controller.storage.catalog_store import DeviceRecord

TEAMS = (("teams_rooms_app", "5.4.88.0", "teams-rooms"),)


def _record(**kw: object) -> DeviceRecord:
    fields: dict[str, object] = {
        "pk": 1,
        "site_id": "s",
        "device_id": "d",
        "tenant": None,
        "vendor": "cisco",
        "model": "Room Kit",
        "firmware_version": "RoomOS 11.17.1.7",
        "family": "roomos",
        "components": TEAMS,
    }
    fields.update(kw)
    return DeviceRecord(**fields)  # type: ignore[arg-type]


def test_the_same_report_is_no_change() -> None:
    assert not differs(_record(), ("RoomOS 11.17.1.7", "cisco", "Room Kit", "roomos", TEAMS))


def test_a_new_family_alone_is_a_change() -> None:
    # Matching uses the reported family first: a codec re-identified in another train is re-matched.
    assert differs(_record(family="telepresence"), ("RoomOS 11.17.1.7", "cisco", "Room Kit", "roomos", TEAMS))


def test_unknown_identity_of_a_device_that_went_down_is_no_change() -> None:
    assert not differs(_record(), (None, "unknown", "unknown", "unknown", ()))


def test_firmware_vendor_model_and_components_each_are_a_change() -> None:
    base = ("RoomOS 11.17.1.7", "cisco", "Room Kit", "roomos", TEAMS)
    for index, value in ((0, "RoomOS 11.22.1.4"), (1, "poly"), (2, "Room Bar")):
        seen = tuple(value if i == index else v for i, v in enumerate(base))
        assert differs(_record(), seen), seen  # type: ignore[arg-type]
    newer = (("teams_rooms_app", "5.5.12.0", "teams-rooms"),)
    assert differs(_record(), (*base[:4], newer))  # type: ignore[arg-type]


def test_a_key_queued_for_two_reasons_is_recomputed_whatever_it_reads() -> None:
    pending: dict = {}
    first = ("1.0", "cisco", "m", "roomos", ())
    queue_key(pending, ("s", "d"), first)
    queue_key(pending, ("s", "d"), first)
    assert pending == {("s", "d"): first}
    queue_key(pending, ("s", "d"), ("2.0", "cisco", "m", "roomos", ()))
    assert pending == {("s", "d"): CHANGED}


def test_planned_software_is_the_firmware_when_the_device_reports_one() -> None:
    assert planned_software("RoomOS 11.17.1.7", "cisco", "Room Kit", "roomos", TEAMS) == (
        "cisco",
        "Room Kit",
        "RoomOS 11.17.1.7",
        "roomos",
    )
    assert planned_software("1.0", "acme", "x", "unknown", ())[3] is None


def test_planned_software_of_a_teams_rooms_pc_is_its_teams_app() -> None:
    # The PC's firmware is Windows: the campaign plans (and verifies) the Teams Rooms app.
    apps = (("device_firmware", "10.0.22631", None), *TEAMS)
    assert planned_software(None, "lenovo", "ThinkSmart Core", "teams-rooms", apps) == (
        "Microsoft",
        "Microsoft Teams Rooms on Windows",
        "5.4.88.0",
        "teams-rooms",
    )
    assert planned_software("", "lenovo", "ThinkSmart Core", None, ())[2] == ""
