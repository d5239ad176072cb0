"""One table of exit codes (fernwart_cli.exits), used by every command and documented once."""

from __future__ import annotations

import argparse
import ast
import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

import fernwart_cli
from fernwart_cli import exits
from fernwart_cli.main import main
from tests.catalog.conftest import CSAF_DIR
from tests.fixtures.net import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(fernwart_cli.__file__).parent
VOIP = CSAF_DIR / "cisco-sa-voip-phones-rce-dos-rB6EeRXs.json"


async def _cli(argv: list[str]) -> int:
    async with asyncio.timeout(60):
        return await asyncio.to_thread(main, argv)


def test_readme_documents_the_table_once() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)}
    assert documented == set(exits.TABLE)
    assert readme.count("### Exit codes") == 1


def test_no_command_keeps_codes_of_its_own() -> None:
    """No bare ``return 3`` and no ``EX_FOO = 69`` in the commands: every code comes from exits."""
    stray = []
    for path in sorted(CLI.glob("*.py")):
        if path.name == "exits.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            value = node.value if isinstance(node, ast.Return) else None
            if isinstance(value, ast.Constant) and type(value.value) is int:
                stray.append(f"{path.name}:{node.lineno}: return {value.value}")
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if any(name.startswith(("EX_", "EXIT_")) for name in names):
                    stray.append(f"{path.name}:{node.lineno}: {names} = {node.value.value!r}")
    assert not stray


@pytest.mark.parametrize(
    "argv",
    [
        ["devices", "list"],
        ["catalog", "list"],
        ["catalog", "import", str(VOIP)],
        ["catalog", "import", "--kev", str(CSAF_DIR.parent / "kev" / "known_exploited_vulnerabilities.json")],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
async def test_controller_unreachable_is_69_everywhere(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FERNWART_CONTROLLER_URL", f"http://127.0.0.1:{free_port()}")
    assert await _cli(argv) == exits.UNAVAILABLE
    assert "cannot reach the controller" in capsys.readouterr().err


@pytest.fixture
async def refusing_controller() -> AsyncIterator[str]:
    """A controller that refuses every token (401), as controller/web/auth.py does."""

    async def refuse(_request: web.Request) -> web.Response:
        return web.json_response({"errors": [{"loc": ["header", "Authorization"], "msg": "no"}]}, status=401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "argv", [["devices", "list"], ["catalog", "list"], ["catalog", "import", str(VOIP)]], ids=" ".join
)
async def test_a_refused_token_is_77_everywhere(
    argv: list[str], refusing_controller: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERNWART_TOKEN", "fwt_not-a-valid-token")
    assert await _cli([*argv, "--controller", refusing_controller]) == exits.NOPERM


AGENT_TOML = """\
site_id = "site-1"
[mqtt]
host = "127.0.0.1"
[outbox]
path = "{outbox}"
[[devices]]
id = "host-1"
kind = "host"
"""


@pytest.mark.parametrize("daemon", ["agent", "controller"])
def test_daemon_run_check_validates_without_starting(
    daemon: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    if daemon == "agent":
        good.write_text(AGENT_TOML.format(outbox=tmp_path / "outbox.db"))
    else:
        good.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/c.db"\n')
        # The daemon never creates its database: --check says so, creates nothing, and passes
        # once `fernwart controller init` made it.
        assert main([daemon, "run", "--config", str(good), "--check"]) == exits.CONFIG
        assert "fernwart controller init" in capsys.readouterr().err
        assert not (tmp_path / "c.db").exists()
        assert main(["controller", "init", "--config", str(good)]) == exits.OK
    assert main([daemon, "run", "--config", str(good), "--check"]) == exits.OK
    assert not (tmp_path / "outbox.db").exists()  # validated, nothing started
    bad = tmp_path / "bad.toml"
    bad.write_text('site_id = "s"\nnonsense = 1\n[mqtt]\nport = 0\n')
    assert main([daemon, "run", "--config", str(bad), "--check"]) == exits.CONFIG
    assert "nonsense" in capsys.readouterr().err


def test_the_daemons_exit_78_like_the_table() -> None:
    from runtime.config import EX_CONFIG  # noqa: PLC0415 - the daemons share theirs (runtime)

    assert EX_CONFIG == exits.CONFIG


def test_every_command_is_mapped_to_the_module_that_registers_it() -> None:
    from fernwart_cli.main import COMMANDS, SUBCOMMANDS, build_parser  # noqa: PLC0415

    assert set(COMMANDS.values()) <= set(SUBCOMMANDS)
    full = build_parser()
    registered = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert set(registered.choices) == set(COMMANDS)
    for command in COMMANDS:
        one = build_parser(command)
        choices = next(a for a in one._actions if isinstance(a, argparse._SubParsersAction)).choices
        assert command in choices
