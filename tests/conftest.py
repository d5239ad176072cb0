"""Fixtures that start real servers on loopback live in tests/fixtures/, one module each."""

import gc

from hypothesis import HealthCheck, settings

# No timing limits in tests: on a busy 2-core CI machine hypothesis' deadline and its "input
# generation too slow" check fail for reasons that say nothing about the code.
settings.register_profile("fernwart", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("fernwart")

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
