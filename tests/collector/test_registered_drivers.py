"""The snmp, host and lldp drivers are found through the entry points, and their examples validate."""

from __future__ import annotations

import pytest

from collector.base import Driver
from collector.registry import known_kinds, load_driver


@pytest.mark.parametrize("kind", ["snmp", "host", "lldp"])
def test_driver_entry_point_and_example(kind: str) -> None:
    assert kind in known_kinds()
    factory = load_driver(kind)
    assert factory.kind == kind
    options = factory.options_model.model_validate(factory.example_options)
    driver = factory("example-device", options)
    assert isinstance(driver, Driver)
    for secret in ("community", "auth_key", "priv_key"):
        if secret in factory.example_options:
            assert str(factory.example_options[secret]) not in options.model_dump_json()
