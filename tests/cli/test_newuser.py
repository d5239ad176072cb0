"""What a new user (or the NOC at 3 a.m.) trips over when following the README: one line, one code.

Each test runs ``fernwart`` in-process the way the README shows it and checks the exit code from
the one table (fernwart_cli/exits.py) and that stderr is one actionable line, not a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fernwart_cli import exits
from fernwart_cli.main import main

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
