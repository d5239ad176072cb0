"""Every registered driver or source is found through its entry point, its example options
validate, and the agent can run it as a source (one-device drivers adapted)."""

from __future__ import annotations

import pytest

from collector.base import Driver, Source
from collector.registry import known_kinds, load_driver, load_source
from collector.sources import is_source
from runtime.redaction import secret_values

KINDS = known_kinds()


def test_the_built_in_kinds_are_registered() -> None:
    assert {"snmp", "host", "lldp"} <= set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_driver_entry_point_and_example(kind: str) -> None:
    factory = load_driver(kind)
    assert factory.kind == kind
    options = factory.options_model.model_validate(factory.example_options)
    made = factory("example-device", options)
    assert isinstance(made, Source if is_source(factory) else Driver)
    # A secret in the documented example does not show in the validated options' dump.
    for secret in secret_values(options):
        assert secret not in options.model_dump_json()


@pytest.mark.parametrize("kind", KINDS)
async def test_every_kind_runs_as_a_source(kind: str) -> None:
    factory = load_source(kind)
    assert factory.kind == kind
    source = factory("example-source", factory.options_model.model_validate(factory.example_options))
    assert isinstance(source, Source)
    await source.aclose()
