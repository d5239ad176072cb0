"""Property tests: whatever JSON Graph answers, parsing it raises nothing but pydantic's
ValidationError (which the source turns into that device's error)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from collector.graph.inventory import DeviceRef, Teamwork, build_observation, family_of, peripherals, unwrap
from collector.graph.source import device_id
from collector.model import IDENT_PATTERN

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
KEYS = [
    "id", "deviceName", "operatingSystem", "osVersion", "model", "manufacturer", "serialNumber",
    "complianceState", "ethernetMacAddress", "wiFiMacAddress", "hardwareDetail", "healthStatus",
    "macAddresses", "serialNumber", "peripheralsHealth", "softwareUpdateHealth", "loginStatus", "connection",
    "displayHealthCollection", "teamsClientSoftwareUpdateStatus", "firmwareSoftwareUpdateStatus",
    "currentVersion", "availableVersion", "softwareFreshness", "connectionStatus", "isOptional", "value",
]  # fmt: skip
graph_objects = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8)
nested = st.dictionaries(st.sampled_from(KEYS), graph_objects | json_values, max_size=8)
REF = DeviceRef("intune-x", "teams-rooms", "MTR-X", "x", "y", None)


@given(nested, nested, nested, st.none() | st.text(max_size=30))
def test_build_observation_raises_only_validation_errors(
    managed: dict[str, Any], device: dict[str, Any], health: dict[str, Any], app: str | None
) -> None:
    try:
        observation = build_observation(
            REF,
            managed,
            app_version=app,
            teamwork=Teamwork(device, health),
            observed_at=datetime.now(UTC),
            errors=[],
        )
    except ValidationError:
        return
    assert observation.device_id == REF.device_id
    assert family_of(managed, has_app=True, android_makers=frozenset({"yealink"})) in {
        None,
        "teams-rooms",
        "teams-android",
    }


@given(json_values)
def test_unwrap_and_peripherals_take_anything(body: Any) -> None:
    found, reasons = peripherals(unwrap(body))
    assert len(reasons) <= len(found)


@given(st.text(max_size=200))
def test_device_ids_are_topic_safe(vendor_id: str) -> None:
    made = device_id("intune", vendor_id)
    assert made.startswith("intune-")
    assert re.fullmatch(IDENT_PATTERN, made) or made == "intune-"


def test_odd_shapes_from_the_field() -> None:
    device = {"hardwareDetail": {"macAddresses": 5, "serialNumber": 7}, "healthStatus": "Healthy"}
    health = {"value": {"softwareUpdateHealth": {"teamsClientSoftwareUpdateStatus": "5.2"}}}
    observation = build_observation(
        REF, {"osVersion": 10}, app_version=None, teamwork=Teamwork(device, unwrap(health)),
        observed_at=datetime.now(UTC), errors=[],
    )  # fmt: skip
    assert observation.identity.macs == []
    assert observation.software == []
