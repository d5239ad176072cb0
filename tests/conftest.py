"""Fixtures that start real servers on loopback live in tests/fixtures/, one module each."""

import gc

pytest_plugins = [
    "tests.fixtures.mqtt",
    "tests.fixtures.postgres",
    "tests.fixtures.amqtt",
    "tests.fixtures.snmpd",
]


def pytest_sessionfinish() -> None:
    # Collect what the tests left behind now, so anything it reports (an MQTT client's unretrieved
    # disconnect future, say) is printed before pytest's summary, not after it at interpreter exit.
    gc.collect()
