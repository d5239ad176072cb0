"""The demo's simulated Microsoft tenant: a fake Graph on loopback and the agent's source for it.

``fernwart demo`` starts ``python -m lab.fakes.graph_main`` (the fixture tenant: two Teams Rooms on
Windows, a Teams phone, a MeetingBar known only to the beta API, a laptop and an iPhone that are
no Teams devices) and gives the demo agent a ``[[sources]]`` entry of kind ``graph`` polling it.
The client secret reaches the agent through its environment (``{ env = … }``), never the file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from subprocess import Popen
from typing import Any, Protocol

SECRET_ENV = "FERNWART_DEMO_GRAPH_SECRET"  # noqa: S105 - the name of a variable, not a secret
SOURCE_ID = "ms-contoso"


def graph_argv(python: str, info_file: Path) -> list[str]:
    return [python, "-m", "lab.fakes.graph_main", "--port", "0", "--info-file", str(info_file)]


def wait_for_info(info_file: Path, proc: Popen[bytes], timeout_s: float = 30.0) -> dict[str, Any]:
    """The fake's URL and tenant credentials, once it listens."""
    deadline = time.monotonic() + timeout_s
    while not info_file.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the fake Microsoft tenant exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fake Microsoft tenant did not start within {timeout_s}s")
        time.sleep(0.1)
    info: dict[str, Any] = json.loads(info_file.read_text())
    return info


def graph_source_config(info: dict[str, Any], interval_s: float) -> str:
    tenant = info["tenants"][0]
    return f"""\
# The simulated Microsoft tenant (python -m lab.fakes.graph_main on loopback), read through Graph.
[[sources]]
id = "{SOURCE_ID}"
kind = "graph"
interval_s = {interval_s}
timeout_s = 60.0

[sources.options]
tenant_id = "{tenant["tenant_id"]}"
client_id = "{tenant["client_id"]}"
client_secret = {{ env = "{SECRET_ENV}" }}
graph_url = "{info["url"]}"
login_url = "{info["url"]}"
"""


def agent_env(info: dict[str, Any]) -> dict[str, str]:
    return {SECRET_ENV: str(info["tenants"][0]["client_secret"])}


class _Starts(Protocol):
    def start(self, what: str, argv: list[str], log: Path) -> Popen[bytes]: ...


def start_microsoft_lab(stack: _Starts, state: Path, python: str, interval_s: float) -> str:
    """Start the simulated tenant; return the agent's ``[[sources]]`` text for it."""
    info_file = state / "microsoft-tenant.json"
    info_file.unlink(missing_ok=True)
    proc = stack.start("microsoft-tenant", graph_argv(python, info_file), state / "microsoft-tenant.log")
    info = wait_for_info(info_file, proc)
    os.environ.update(agent_env(info))  # the agent inherits it; its config holds only an {env = …} reference
    sys.stdout.write(f"lab: a simulated Microsoft tenant (Graph and login) on {info['url']}\n")
    return "\n" + graph_source_config(info, interval_s)
