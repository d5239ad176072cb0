"""Config loading: strict, every error at once with its key path, secrets resolved, exit 78."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from agent.__main__ import main
from agent.settings import AgentSettings, load_settings, parse_settings
from runtime.config import EX_CONFIG, ConfigError
from tests.agent.drivers import CountingOptions, lookup

ROOT = Path(__file__).resolve().parents[2]
AGENT = Path(sys.executable).with_name("fernwart-agent")
EXAMPLE = ROOT / "agent" / "example-agent.toml"

VALID = """
site_id = "site-1"
agent_id = "agent-1"

[mqtt]
host = "127.0.0.1"
port = 1883

[poll]
default_interval_s = 30

[[devices]]
id = "dev-1"
kind = "counting"
[devices.options]
firmware = "2.1"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def errors_of(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), lookup=lookup)
    return info.value.problems


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, VALID), lookup=lookup)
    assert isinstance(settings, AgentSettings)
    device = settings.devices[0]
    assert settings.interval_for(device) == 30
    assert settings.timeout_for(device) == settings.poll.timeout_s
    assert isinstance(device.driver_options, CountingOptions)
    assert device.driver_options.firmware == "2.1"
    assert settings.mqtt.prefix == "fernwart/v1"
    assert settings.client_id == "fernwart-agent-site-1-agent-1"


def test_typo_names_the_key_path(tmp_path: Path) -> None:
    text = VALID.replace("default_interval_s = 30", "default_interval_s = 30\nintervall_s = 5")
    assert errors_of(text, tmp_path) == ["poll.intervall_s: unknown key"]


def test_every_error_at_once(tmp_path: Path) -> None:
    text = """
site_id = "bad site"
[mqtt]
port = "eighty"
[outbox]
drop_policy = "drop_random"
[[devices]]
id = "a"
kind = "counting"
options = { firmwar = "1" }
[[devices]]
id = "b"
kind = "nosuch"
"""
    errors = errors_of(text, tmp_path)
    paths = {line.split(":", 1)[0] for line in errors}
    assert paths == {
        "site_id",
        "mqtt.host",
        "mqtt.port",
        "outbox.drop_policy",
        "devices[0].options.firmwar",
        "devices[1].kind",
    }, errors
    assert "devices[0].options.firmwar: unknown key" in errors
    assert "mqtt.host: field required" in errors
    kind_error = next(line for line in errors if line.startswith("devices[1].kind"))
    assert "nosuch" in kind_error
    assert "counting" in kind_error  # the known kinds are listed


def test_unknown_kind_lists_installed_drivers(tmp_path: Path) -> None:
    text = VALID.replace('kind = "counting"', 'kind = "snmpp"').replace('firmware = "2.1"', "")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))  # the real entry-point registry
    (line,) = info.value.problems
    assert line.startswith("devices[0].kind: unknown driver kind 'snmpp'")
    assert "snmp" in line.split("known kinds:")[1]


def test_duplicate_device_ids(tmp_path: Path) -> None:
    text = VALID + '\n[[devices]]\nid = "dev-1"\nkind = "counting"\n'
    assert errors_of(text, tmp_path) == ["devices: duplicate device ids: dev-1"]


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    (line,) = errors_of('site_id = "x"\n[mqtt\nhost = 1\n', tmp_path)
    assert "line 2" in line
    assert "column" in line


def test_secret_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FW_TEST_PASSWORD", "s3cr3t-from-env")
    monkeypatch.setenv("FW_TEST_COMMUNITY", "community-from-env")
    text = VALID.replace("port = 1883", 'port = 1883\npassword = { env = "FW_TEST_PASSWORD" }').replace(
        'firmware = "2.1"', 'firmware = "2.1"\ncommunity = { env = "FW_TEST_COMMUNITY" }'
    )
    settings = load_settings(write(tmp_path, text), lookup=lookup)
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "s3cr3t-from-env"
    options = settings.devices[0].driver_options
    assert isinstance(options, CountingOptions)
    assert options.community is not None
    assert options.community.get_secret_value() == "community-from-env"
    # Neither the settings nor their repr leak it.
    assert "s3cr3t-from-env" not in repr(settings)
    assert "community-from-env" not in repr(settings)


def test_secret_from_systemd_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("cred-pass\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    text = VALID.replace("port = 1883", 'port = 1883\npassword = { credential = "mqtt-password" }')
    settings = load_settings(write(tmp_path, text), lookup=lookup)
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "cred-pass"


def test_unresolvable_secrets_are_reported_once_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FW_TEST_UNSET", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    text = (
        VALID.replace("port = 1883", 'port = 1883\npassword = { env = "FW_TEST_UNSET" }')
        .replace('firmware = "2.1"', 'firmware = "2.1"\ncommunity = { credential = "snmp" }')
        .replace('host = "127.0.0.1"', 'host = { env = "FW_TEST_UNSET" }')
    )
    errors = errors_of(text, tmp_path)
    assert sorted(errors) == [
        "devices[0].options.community: credential 'snmp' requested but $CREDENTIALS_DIRECTORY is not set",
        "mqtt.host: environment variable FW_TEST_UNSET is not set",
        "mqtt.password: environment variable FW_TEST_UNSET is not set",
    ]


def test_missing_credential_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    raw = {"site_id": "s", "mqtt": {"host": "h", "password": {"credential": "nope"}}}
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, lookup=lookup)
    assert info.value.problems == ["mqtt.password: credential 'nope' not found in $CREDENTIALS_DIRECTORY"]


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The documented example, with its secrets provided, passes the real registry's validation."""
    if not (ROOT / "collector" / "snmp" / "driver.py").exists():
        pytest.skip("the snmp driver is not in this checkout")
    creds = tmp_path / "creds"
    creds.mkdir()
    for name, value in {
        "mqtt-password": "pw",
        "agent-key-password": "kp",
        "snmp-auth-key": "authkey-123",
        "snmp-priv-key": "privkey-123",
    }.items():
        (creds / name).write_text(value)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    monkeypatch.setenv("FERNWART_SNMP_COMMUNITY", "public")
    # Its TLS files are checked to exist: as documented they are not there on a test machine.
    with pytest.raises(ConfigError) as info:
        load_settings(EXAMPLE)
    assert [line.split(":")[0] for line in info.value.problems] == [
        "mqtt.tls.ca_file",
        "mqtt.tls.cert_file",
        "mqtt.tls.key_file",
    ]
    etc = tmp_path / "etc"
    etc.mkdir()
    text = EXAMPLE.read_text().replace("/etc/fernwart/", f"{etc}/")
    for name in re.findall(rf'"{re.escape(str(etc))}/([^"]+)"', text):
        (etc / name).write_text("-")
    settings = load_settings(write(tmp_path, text))
    assert [d.id for d in settings.devices] == ["room-201-codec", "room-202-phone"]
    assert settings.mqtt.tls is not None


def test_missing_tls_files_and_a_quota_below_one_batch_are_config_errors(tmp_path: Path) -> None:
    text = VALID.replace(
        "port = 1883\n",
        f'port = 1883\n[mqtt.tls]\nca_file = "{tmp_path}/nope-ca.pem"\n[outbox]\nmax_bytes = 65536\n',
    )
    assert errors_of(text, tmp_path) == [
        f"mqtt.tls.ca_file: {tmp_path}/nope-ca.pem: no such file",
        (
            "outbox.max_bytes: smaller than one batch may be (1048576 bytes, the largest message the wire"
            " accepts): such batches would all be dropped"
        ),
    ]


def test_main_prints_every_error_and_returns_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, 'site_id = "s"\nsite = "x"\n[mqtt]\nhost = "h"\nport = 0\n')
    with structlog.testing.capture_logs() as logs:
        assert main(["--config", str(path)]) == EX_CONFIG
    err = capsys.readouterr().err.splitlines()
    assert "config error: site: unknown key" in err
    assert any(line.startswith("config error: mqtt.port: ") for line in err)
    assert len(err) == 2
    assert not logs  # nothing started


def test_subprocess_typo_exits_78_naming_the_key(tmp_path: Path) -> None:
    text = 'site_id = "s"\n[mqtt]\nhost = "127.0.0.1"\n[poll]\nintervall_s = 5\n'
    proc = subprocess.run(
        [str(AGENT), "--config", str(write(tmp_path, text))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 78
    assert "poll.intervall_s: unknown key" in proc.stderr


def test_subprocess_missing_file_exits_78(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(AGENT), "--config", str(tmp_path / "absent.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 78
    assert "cannot read config file" in proc.stderr


def test_environment_beats_the_file_as_for_the_controller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERNWART_MQTT__HOST", "broker.example")
    monkeypatch.setenv("FERNWART_LOG_LEVEL", "debug")
    settings = load_settings(write(tmp_path, VALID), lookup=lookup)
    assert settings.mqtt.host == "broker.example"
    assert settings.mqtt.port == 1883  # the rest of the table still comes from the file
    assert settings.log_level == "debug"
    monkeypatch.setenv("FERNWART_MQTT__PORT", "0")
    assert any(line.startswith("mqtt.port: ") for line in errors_of(VALID, tmp_path))
