"""Controller configuration: strict, every error at once with its key path, exit 78."""

from __future__ import annotations

from pathlib import Path

import pytest

import controller
from controller.__main__ import main
from controller.settings import load_settings
from fernwart_cli.main import main as fernwart_main
from runtime.config import EX_CONFIG, ConfigError

EXAMPLE = Path(controller.__file__).parent / "examples" / "controller.toml"


def test_example_config_is_valid() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.tenant_of("site-1") == "acme"
    assert settings.tenant_of("site-9") == "default"
    assert settings.mqtt.share_group == ""
    assert settings.database.url.get_secret_value().startswith("sqlite+aiosqlite://")


def test_every_error_at_once_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'stale_after_intervals = -1\n[mqtt]\nport = 70000\ncolour = "red"\n[http]\nport = "x"\n'
        '[sites."bad site"]\ntenant = "t"\n[sites.ok]\ntenant = 5\n'
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    problems = err.value.problems
    assert any(p.startswith("stale_after_intervals: Input should be greater than 0") for p in problems)
    assert any(p.startswith("mqtt.port: Input should be less than or equal to 65535") for p in problems)
    assert any(p.startswith("mqtt.colour: unknown key") for p in problems)
    assert any(p.startswith("http.port: Input should be a valid integer") for p in problems)
    assert any(p.startswith("sites.bad site.[key]: String should match pattern") for p in problems)
    assert any(p.startswith("sites.ok.tenant: Input should be a valid string") for p in problems)
    assert len(problems) == 6


def test_bad_toml_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[mqtt\nport = 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "line 1" in err.value.problems[0]


def test_main_exits_78_and_prints_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[database]\nurl = 5\n[nonsense]\n")
    assert main(["--config", str(path)]) == EX_CONFIG
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "config error: database.url: Input should be a valid string",
        "config error: nonsense: unknown key",
    ]
    assert main(["--config", str(tmp_path / "missing.toml")]) == EX_CONFIG
    # The example's ./var/fernwart.db: --check says to create it first, and passes after init.
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["--config", str(EXAMPLE), "--check"]) == EX_CONFIG
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("config error: database.url: var/fernwart.db: no such database file;")
    assert fernwart_main(["controller", "init", "--config", str(EXAMPLE)]) == 0
    assert main(["--config", str(EXAMPLE), "--check"]) == 0


def test_environment_beats_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERNWART_MQTT__PORT", "1999")
    monkeypatch.setenv("FERNWART_DATABASE__URL", "postgresql+asyncpg://u@127.0.0.1/x")
    settings = load_settings(EXAMPLE)
    assert settings.mqtt.port == 1999
    assert settings.mqtt.host == "127.0.0.1"  # the rest of the section still comes from the file
    assert settings.database.url.get_secret_value() == "postgresql+asyncpg://u@127.0.0.1/x"


def test_fernwart_controller_run_exits_78_on_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[mqtt]\nport = 0\n")
    assert fernwart_main(["controller", "run", "--config", str(path)]) == EX_CONFIG


def test_secret_references_as_for_the_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "database-url").write_text("postgresql+asyncpg://fw:db-pw@127.0.0.1/fw\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    monkeypatch.setenv("BROKER_PASSWORD", "mqtt-pw")
    path = tmp_path / "c.toml"
    path.write_text(
        '[database]\nurl = { credential = "database-url" }\n'
        '[mqtt]\nusername = "controller"\npassword = { env = "BROKER_PASSWORD" }\n'
    )
    settings = load_settings(path)
    assert settings.database.url.get_secret_value() == "postgresql+asyncpg://fw:db-pw@127.0.0.1/fw"
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "mqtt-pw"
    monkeypatch.delenv("BROKER_PASSWORD")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.problems == ["mqtt.password: environment variable BROKER_PASSWORD is not set"]


def test_mqtt_tls_is_the_agents_table(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    path.write_text(f'[mqtt.tls]\nca_file = "{ca}"\nserver_hostname_check = false\n')
    tls = load_settings(path).mqtt.tls
    assert tls is not None
    assert tls.ca_file == ca
    assert tls.server_hostname_check is False
    assert load_settings(None).mqtt.tls is None


def test_old_tls_flags_still_work_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    path.write_text(f'[mqtt]\ntls = true\nca_file = "{ca}"\n')
    with pytest.warns(FutureWarning, match=r"\[mqtt.tls\]"):
        tls = load_settings(path).mqtt.tls
    assert tls is not None
    assert tls.ca_file == ca
    path.write_text("[mqtt]\ntls = false\n")
    with pytest.warns(FutureWarning):
        assert load_settings(path).mqtt.tls is None


def test_a_corrupt_sqlite_file_and_a_missing_ca_file_are_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "fernwart.db"
    db.write_bytes(b"not a database at all, but long enough to have a header")
    path = tmp_path / "c.toml"
    password = "pw-never-echoed"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{db}"\n'
        f'[mqtt]\npassword = "{password}"\n[mqtt.tls]\nca_file = "{tmp_path}/ca.pem"\n'
    )
    assert main(["--config", str(path), "--check"]) == EX_CONFIG
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"config error: database.url: {db}: not a SQLite database (corrupt, or another kind of file)",
        f"config error: mqtt.tls.ca_file: {tmp_path}/ca.pem: no such file",
    ]
    assert password not in err
    # `init` refuses too: it never writes over a file that is not a database.
    assert fernwart_main(["controller", "init", "--config", str(path)]) == EX_CONFIG
    assert db.read_bytes().startswith(b"not a database")


def test_the_campaign_runner_settings(tmp_path: Path) -> None:
    """``[campaigns]``: how often the runner steps and how long one update may take; the example
    states the defaults, and a bad value is named by its key path."""
    example = load_settings(EXAMPLE).campaigns
    assert (example.tick_s, example.expected_duration_s) == (30.0, 1800.0)
    path = tmp_path / "campaigns.toml"
    path.write_text("[campaigns]\ntick_s = 0.5\nexpected_duration_s = 10\n")
    assert load_settings(path).campaigns.expected_duration_s == 10.0
    path.write_text("[campaigns]\ntick_s = 0\nexpected_duration_s = -1\nstep = 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    problems = err.value.problems
    assert any(p.startswith("campaigns.tick_s: Input should be greater than 0") for p in problems)
    assert any(
        p.startswith("campaigns.expected_duration_s: Input should be greater than 0") for p in problems
    )
    assert any(p.startswith("campaigns.step: unknown key") for p in problems)
