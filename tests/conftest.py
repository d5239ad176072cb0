"""Fixtures that start real servers on loopback live in tests/fixtures/, one module each."""

import gc
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
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


@pytest.fixture(autouse=True)
def _work_in_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test runs in a directory of its own: a daemon's default relative paths (the
    controller's ``./var/fernwart.db`` and ``./var/command-key.pem``) land there, never in the
    checkout, and a test cannot lean on the directory pytest was started from."""
    workdir = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        yield workdir


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A test that runs a CLI command in-process configures logging as the command does (structlog
    and the root logger bound to the sys.stderr of that moment: pytest's capture file). Later tests
    must not log into that file after pytest closed it ("I/O operation on closed file" in whatever
    test logs next), so the configuration is put back after every test."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    config = structlog.get_config()
    yield
    root.handlers[:], level, sys.excepthook, threading.excepthook = saved
    root.setLevel(level)
    structlog.configure(**config)


def pytest_sessionfinish() -> None:
    # Collect what the tests left behind now, so anything it reports (an MQTT client's unretrieved
    # disconnect future, say) is printed before pytest's summary, not after it at interpreter exit.
    gc.collect()
