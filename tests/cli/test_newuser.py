"""What a new user (or the NOC at 3 a.m.) trips over when following the README: one line, one code.

Each test runs ``fernwart`` in-process the way the README shows it and checks the exit code from
the one table (fernwart_cli/exits.py) and that stderr is one actionable line, not a traceback.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from fernwart_cli import exits
from fernwart_cli.demo_probes import probe_commands
from fernwart_cli.main import main
from lab.fakes.cisco_lab import DEMO_ACCESS_TOKEN, demo_org

# Nothing listens on port 1: a command that contacts the controller before checking its own
# arguments would answer 69 here, not the usage error the tests expect.
NOWHERE = "http://127.0.0.1:1"


def _token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "admin.token"
    token.write_text("fwt_not-a-real-token\n", encoding="utf-8")
    monkeypatch.setenv("FERNWART_TOKEN_FILE", str(token))


def test_audit_export_to_a_missing_directory_is_one_line_and_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _token(tmp_path, monkeypatch)
    target = tmp_path / "no-such-dir" / "audit.csv"
    code = main(["audit", "export", "--format", "csv", "--output", str(target), "--controller", NOWHERE])
    err = capsys.readouterr().err
    assert code == exits.USAGE
    assert err.splitlines() == [
        f"fernwart audit: --output {target}: directory {target.parent} does not exist"
    ]
    assert not target.parent.exists()


def test_audit_export_to_a_directory_is_refused_before_the_controller_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _token(tmp_path, monkeypatch)
    code = main(["audit", "export", "--output", str(tmp_path), "--controller", NOWHERE])
    assert code == exits.USAGE
    assert capsys.readouterr().err == f"fernwart audit: --output {tmp_path}: is a directory\n"


def test_probe_webex_without_a_token_names_the_flag_not_a_config_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["probe", "webex", "--base-url", NOWHERE + "/v1"])
    err = capsys.readouterr().err
    assert stop.value.code == exits.USAGE
    assert "--token-env" in err
    assert "access_token" not in err


def test_tenant_check_webex_without_credentials_lists_the_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["tenant", "check", "webex", "--base-url", NOWHERE + "/v1"])
    err = capsys.readouterr().err
    assert code == exits.USAGE
    assert len(err.splitlines()) == 1
    assert err.startswith(
        "fernwart tenant check webex: no credentials given: use --token-env VAR, or --client-id"
    )
    assert "refresh_token" not in err


def _start_lab(argv: list[str], info: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv, "--info-file", str(info)], stdout=subprocess.DEVNULL
    )
    for _ in range(600):
        if info.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert info.exists(), f"{argv[0]} did not start (exit {proc.poll()})"
    return proc


def test_the_probe_commands_the_demo_prints_run_against_its_fakes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A new user cannot guess where the demo's fakes listen nor their credentials: the demo prints
    # the commands and keeps the fake credentials in fakes.env (0600). Every printed command works.
    procs = [
        _start_lab(["lab.fakes.graph_main", "--port", "0"], tmp_path / "microsoft-tenant.json"),
        _start_lab(["lab.fakes.cisco_lab"], tmp_path / "cisco-lab.json"),
    ]
    try:
        source, *commands = probe_commands(tmp_path)
        env_file = tmp_path / "fakes.env"
        assert source == f"set -a; . {env_file}; set +a"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        for line in env_file.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            monkeypatch.setenv(key, shlex.split(value)[0])
        assert [c.split()[1:3] for c in commands] == [
            ["probe", "graph"],
            ["tenant", "check"],
            ["probe", "webex"],
            ["tenant", "check"],
            ["probe", "xapi"],
        ]
        for command in commands:
            argv = shlex.split(command)
            assert argv[0] == "fernwart"
            capsys.readouterr()
            assert main(argv[1:]) == exits.OK, (command, capsys.readouterr().err)
            assert json.loads(capsys.readouterr().out)
            for value in (env_file.read_text(encoding="utf-8")).splitlines():
                assert value.partition("=")[2] not in command  # secrets stay in the file
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


async def test_tenant_check_webex_pages_on_to_find_a_calling_phone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The demo org lists four devices a page, rooms first: reading the first page only, the check
    # said "unverified: no Webex Calling phone in the listing" for an org with three phones.
    fake = demo_org(6, 3)
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    monkeypatch.setenv("WX_TOKEN", DEMO_ACCESS_TOKEN)
    try:
        base = f"http://127.0.0.1:{server.port}/v1"
        code = await asyncio.to_thread(
            main, ["tenant", "check", "webex", "--token-env", "WX_TOKEN", "--base-url", base]
        )
    finally:
        await server.close()
    report = json.loads(capsys.readouterr().out)
    assert code == exits.OK
    calling = next(c for c in report["capabilities"] if c["capability"] == "calling")
    assert calling["status"] == "granted", calling
    inventory = next(c for c in report["capabilities"] if c["capability"] == "inventory")
    assert inventory["detail"].endswith("page(s) read")
