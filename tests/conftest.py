"""Fixtures that start real servers on loopback live in tests/fixtures/, one module each."""

pytest_plugins = [
    "tests.fixtures.mqtt",
    "tests.fixtures.postgres",
    "tests.fixtures.amqtt",
    "tests.fixtures.snmpd",
]
