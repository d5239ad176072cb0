"""What ``make demo`` prints so a new user can try the vendor probes against its fakes.

The demo's Microsoft tenant, Webex org and on-prem codec listen on ports the OS chose, with fixed
fake credentials no user could guess. The demo writes those credentials to ``fakes.env`` in its
state directory (mode 0600, sourced by the shell: values never on a command line, which ``ps``
shows) and prints the ``probe`` / ``tenant check`` commands as they run against this demo.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from fernwart_cli.demo_tenants import SECRET_ENV as GRAPH_SECRET_ENV
from lab.fakes.cisco_lab import DEMO_ACCESS_TOKEN, DEMO_ACCESS_TOKEN_ENV, DEMO_ENV

ENV_FILE = "fakes.env"


def _write_env(path: Path, values: dict[str, str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.writelines(f"{key}={shlex.quote(value)}\n" for key, value in sorted(values.items()))
    path.chmod(0o600)  # an existing file keeps its old mode through O_CREAT


def probe_commands(state: Path) -> list[str]:
    """The commands, one per line (the first sources the env file), for the fakes described by
    ``microsoft-tenant.json`` and ``cisco-lab.json`` in ``state``; writes ``state/fakes.env``."""
    graph = json.loads((state / "microsoft-tenant.json").read_text(encoding="utf-8"))
    cisco = json.loads((state / "cisco-lab.json").read_text(encoding="utf-8"))
    tenant = graph["tenants"][0]
    env_file = state / ENV_FILE
    _write_env(
        env_file,
        {
            **DEMO_ENV,
            DEMO_ACCESS_TOKEN_ENV: DEMO_ACCESS_TOKEN,
            GRAPH_SECRET_ENV: str(tenant["client_secret"]),
        },
    )
    ms = (
        f"--tenant {shlex.quote(tenant['tenant_id'])} --client-id {shlex.quote(tenant['client_id'])}"
        f" --client-secret-env {GRAPH_SECRET_ENV} --graph-url {graph['url']} --login-url {graph['url']}"
    )
    webex = f"http://127.0.0.1:{int(cisco['webex_port'])}/v1"
    return [
        f"set -a; . {shlex.quote(str(env_file))}; set +a",
        f"fernwart probe graph {ms}",
        f"fernwart tenant check microsoft {ms}",
        f"fernwart probe webex --token-env {DEMO_ACCESS_TOKEN_ENV} --base-url {webex}",
        (
            "fernwart tenant check webex --client-id fake-client"
            " --client-secret-env FERNWART_DEMO_WEBEX_CLIENT_SECRET"
            f" --refresh-token-env FERNWART_DEMO_WEBEX_REFRESH_TOKEN --base-url {webex}"
        ),
        (
            f"fernwart probe xapi 127.0.0.1:{int(cisco['codec_port'])} --http --user admin"
            " --password-env FERNWART_DEMO_CODEC_PASSWORD"
        ),
    ]


def probe_banner(state: Path) -> str:
    """The banner's section: how to try the vendor probes (fake credentials in fakes.env)."""
    lines = probe_commands(state)
    return "  probes:   the fakes' credentials are in {}; in a shell:\n{}".format(
        state / ENV_FILE, "".join(f"    {line}\n" for line in lines)
    )
