"""Fixtures that start real servers on loopback live in tests/fixtures/, one module each."""

pytest_plugins = [
    "tests.fixtures.mqtt",
    "tests.fixtures.snmpd",
]
