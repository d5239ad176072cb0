"""The demo's simulated Microsoft tenant: a fake Graph on loopback and the agent's source for it.

``fernwart demo`` starts ``python -m lab.fakes.graph`` (the fixture tenant: two Teams Rooms on
Windows, a Teams phone, a MeetingBar known only to the beta API, a laptop and an iPhone that are
no Teams devices) and gives the demo agent a ``[[sources]]`` entry of kind ``graph`` polling it.
The client secret reaches the agent through its environment (``{ env = … }``), never the file.

The agent reads ``[[sources]]`` once the Step 6 source contract is merged; until then
:func:`agent_understands_sources` is False and the demo writes the entry to
``agent-sources.toml`` beside the agent's config instead, for the operator to see.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from subprocess import Popen
from typing import Any

SECRET_ENV = "FERNWART_DEMO_GRAPH_SECRET"  # noqa: S105 - the name of a variable, not a secret
SOURCE_ID = "ms-contoso"


def agent_understands_sources() -> bool:
    from agent.settings import AgentSettings  # noqa: PLC0415 - only the demo asks

    return "sources" in AgentSettings.model_fields


def graph_argv(python: str, info_file: Path) -> list[str]:
    return [python, "-m", "lab.fakes.graph", "--port", "0", "--info-file", str(info_file)]


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
# The simulated Microsoft tenant (python -m lab.fakes.graph on loopback), read through Graph.
[[sources]]
id = "{SOURCE_ID}"
kind = "graph"
interval_s = {interval_s}

[sources.options]
tenant_id = "{tenant["tenant_id"]}"
client_id = "{tenant["client_id"]}"
client_secret = {{ env = "{SECRET_ENV}" }}
graph_url = "{info["url"]}"
login_url = "{info["url"]}"
"""


def agent_env(info: dict[str, Any]) -> dict[str, str]:
    return {SECRET_ENV: str(info["tenants"][0]["client_secret"])}
