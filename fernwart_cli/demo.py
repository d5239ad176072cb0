"""``fernwart demo``: the whole product on one machine, configured for a lab.

Starts, in order: the embedded amqtt broker, a lab of simulated SNMP devices (snmpsim on
loopback), a simulated Microsoft tenant (:mod:`fernwart_cli.demo_tenants`), the controller
(SQLite) and an agent polling the lab and the tenant. Each is its own process started
exactly as in production (``python -m controller --config …``), only configured for loopback. Prints
the console URL and stops everything, in reverse order, on Ctrl-C or SIGTERM.

The controller accepts messages only for enrolled sites, so the demo enrolls its lab site for its
agent before the controller starts, as an admin would with ``fernwart controller enroll``. The
embedded amqtt broker stays anonymous, on loopback only: the demo has no broker users or ACL and
its agent sends no password (a real deployment: ``fernwart controller broker-config``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import aiomqtt

from controller.commands.keys import KeyFileError, load_key, public_text
from controller.settings import load_settings
from controller.storage import Store, enrollment
from fernwart_cli import demo_tenants, exits
from fernwart_cli.demo_probes import probe_banner
from lab.devices import lab_devices
from lab.fakes.cisco_lab import DEMO_ENV, agent_sources
from lab.snmpsim import start_snmpsim

CATALOG = Path(__file__).resolve().parents[1] / "lab" / "catalog"
SITE_ID = "lab-berlin"
AGENT_ID = "lab-agent-1"
TENANT = "demo-customer"


def _free_tcp_port(preferred: int) -> int:
    for port in (preferred, 0):
        with contextlib.closing(socket.socket()) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free TCP port on 127.0.0.1")


async def _mqtt_answers(port: int) -> bool:
    try:
        async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V311, timeout=1):
            return True
    except aiomqtt.MqttError:
        return False


def _wait_mqtt(port: int, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 30.0) -> None:
    # A real CONNECT, not a bare TCP probe: amqtt logs an error for every connection that
    # closes without speaking MQTT.
    deadline = time.monotonic() + timeout_s
    while True:
        if asyncio.run(_mqtt_answers(port)):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on {port}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} does not listen on 127.0.0.1:{port} after {timeout_s}s")
        time.sleep(0.1)


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310
            if response.status == 200:
                return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} does not answer {url} after {timeout_s}s")
        time.sleep(0.2)


def _wait_info(
    path: Path, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 30.0
) -> dict[str, Any]:
    """The JSON a lab process writes once it listens (the ports it bound)."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} (see {path.with_suffix('.log')})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {timeout_s}s (see {path.with_suffix('.log')})")
        time.sleep(0.1)
    info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return info


def start_cisco_lab(stack: _Stack, state: Path, python: str, interval_s: float) -> str:
    """Start the simulated Webex org and on-prem codec; return the agent's ``[[sources]]`` for them."""
    # The lab binds port 0 itself and writes what it got: ports picked here and bound there could be
    # taken in between by another process (the demo then failed with "address already in use").
    info_file = state / "cisco-lab.json"
    info_file.unlink(missing_ok=True)
    argv = [python, "-m", "lab.fakes.cisco_lab", "--info-file", str(info_file)]
    proc = stack.start("cisco-lab", argv, state / "cisco-lab.log")
    ports = _wait_info(info_file, proc, "the simulated Webex org and codec")
    webex_port, codec_port = int(ports["webex_port"]), int(ports["codec_port"])
    os.environ.update(DEMO_ENV)  # the agent inherits them; its config holds only {env = …} references
    sys.stdout.write(
        f"lab: a Webex org on 127.0.0.1:{webex_port}, an on-prem codec on 127.0.0.1:{codec_port}\n"
    )
    return agent_sources(webex_port, codec_port, interval_s)


def _send(method: str, url: str, body: bytes, token: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback URL we built
        url,
        data=body,
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def init_database(python: str, config: Path) -> str:
    """``fernwart controller init``, as an operator runs it before the first start (the daemon
    never creates a database). Returns its one-line report."""
    argv = [python, "-m", "fernwart_cli.main", "controller", "init", "--config", str(config)]
    done = subprocess.run(argv, capture_output=True, check=False, timeout=120)  # noqa: S603 (our argv)
    if done.returncode != 0:
        raise RuntimeError(f"controller init failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode().strip()


def agent_trust(config: Path) -> str:
    """The agent's ``[controller]`` table: the public key of the command key ``controller init``
    created, so the demo's campaign can send the agent signed commands."""
    try:
        key = load_key(load_settings(config).commands.key_file)
    except KeyFileError as err:
        raise RuntimeError(f"commands.key_file: {err}") from None
    return (
        "\n# Whom this agent takes commands from (`fernwart controller key show`).\n"
        f'[controller]\ncommand_key = "{public_text(key)}"\n'
    )


def create_admin_token(python: str, config: Path, token_file: Path) -> str:
    """A noc-admin token made as an operator bootstraps one (``fernwart controller token create``),
    kept in ``token_file`` (mode 0600) for the CLI (``FERNWART_TOKEN_FILE``)."""
    argv = [python, "-m", "fernwart_cli.main", "controller", "token", "create"]
    argv += ["--name", "demo-admin", "--role", "noc-admin", "--config", str(config)]
    done = subprocess.run(argv, capture_output=True, check=False, timeout=120)  # noqa: S603 (our argv)
    if done.returncode != 0:
        raise RuntimeError(f"token create failed: {done.stderr.decode(errors='replace').strip()}")
    token = done.stdout.decode().strip().splitlines()[-1]
    token_file.touch(mode=0o600)
    token_file.chmod(0o600)
    token_file.write_text(token + "\n")
    return token


def import_lab_catalog(url: str, token: str) -> str:
    """Load the demo advisories and the KEV excerpt through the REST API, as an operator would
    with `fernwart catalog import`. Returns a one-line summary."""
    accepted = rejected = 0
    for path in sorted((CATALOG / "csaf").glob("*.json")):
        status = _send("POST", f"{url}/api/v1/advisories", path.read_bytes(), token)
        if 200 <= status < 300:
            accepted += 1
        else:
            rejected += 1
            sys.stderr.write(f"advisory {path.name} rejected with HTTP {status}\n")
    kev = _send("PUT", f"{url}/api/v1/kev", (CATALOG / "kev.json").read_bytes(), token)
    return f"catalog: {accepted} advisories imported, {rejected} rejected; KEV excerpt: HTTP {kev}"


def controller_config(state: Path, broker_port: int, http_port: int) -> str:
    db = (state / "fernwart.db").resolve()
    return f"""\
# Written by `fernwart demo`: the controller on SQLite with the embedded (MQTT 3.1.1) broker.
log_level = "info"
default_interval_s = 15.0

[database]
url = "sqlite+aiosqlite:///{db}"

[mqtt]
host = "127.0.0.1"
port = {broker_port}
client_id = "fernwart-demo-controller"
protocol = "3.1.1"      # amqtt speaks MQTT 3.1.1 only …
share_group = ""        # … so no $share subscription

[http]
host = "127.0.0.1"
port = {http_port}

[commands]
key_file = "{(state / "command-key.pem").resolve()}"  # created by `fernwart controller init`

[sites.{SITE_ID}]
tenant = "{TENANT}"
"""


def agent_config(state: Path, broker_port: int, snmp_port: int, interval_s: float) -> str:
    lines = [
        "# Written by `fernwart demo`: one agent polling the simulated lab over SNMPv2c.",
        f'site_id = "{SITE_ID}"',
        f'agent_id = "{AGENT_ID}"',
        'log_level = "info"',
        "",
        "[mqtt]",
        'host = "127.0.0.1"',
        f"port = {broker_port}",
        "",
        "[outbox]",
        f'path = "{(state / "outbox.db").resolve()}"',
        "",
        "[poll]",
        f"default_interval_s = {interval_s}",
        "timeout_s = 8.0",
        "",
        "[[devices]]",
        'id = "agent-host"',
        'kind = "host"',
    ]
    for device in lab_devices():
        lines += [
            "",
            "[[devices]]",
            f'id = "{device.id}"',
            'kind = "snmp"',
            "",
            "[devices.options]",
            'host = "127.0.0.1"',
            f"port = {snmp_port}",
            f'community = "{device.community}"',
        ]
    return "\n".join(lines) + "\n"


def enroll_lab_site(config: Path) -> str:
    """Enroll the lab site for the lab agent in the controller's database (kept when a previous
    demo run in the same state directory enrolled it). Returns a one-line summary."""

    async def enroll() -> str:
        settings = load_settings(config)
        async with Store.open(settings.database.url.get_secret_value(), create=False) as store:
            current = await enrollment.get_enrollment(store, SITE_ID)
            if current is not None and current.active and current.agent_id == AGENT_ID:
                return f"site {SITE_ID}: enrolled for agent {AGENT_ID} (from an earlier run)"
            if current is not None and current.active:
                await enrollment.unenroll(store, SITE_ID)
            await enrollment.enroll(store, SITE_ID, AGENT_ID, enrolled_by="fernwart demo")
        return f"site {SITE_ID}: enrolled for agent {AGENT_ID} (embedded broker: anonymous, loopback only)"

    return asyncio.run(enroll())


def lab_campaign(url: str, token: str) -> str:
    """The lab's planned campaign (:mod:`fernwart_cli.demo_campaign`), printed before the banner."""
    from fernwart_cli.demo_campaign import show_campaign  # noqa: PLC0415 - demo's imports stay as other branches edit them

    return show_campaign(url, token, TENANT, SITE_ID, len(lab_devices()))


@dataclass
class _Stack:
    """Processes in start order; stopped in reverse."""

    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, what: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603 - our own argv
        self.procs.append((what, proc))
        return proc

    def stop(self) -> None:
        for what, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    sys.stderr.write(f"{what} did not stop within 15 s; killing it\n")
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()


def run_demo(args: argparse.Namespace) -> int:
    state = Path(args.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    broker_port = _free_tcp_port(args.broker_port)
    http_port = _free_tcp_port(args.http_port)
    python = sys.executable

    stop_requested = False

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    stack = _Stack()
    sim = None
    try:
        broker = stack.start(
            "broker", [python, "-m", "lab.broker", "--port", str(broker_port)], state / "broker.log"
        )
        _wait_mqtt(broker_port, broker, "the amqtt broker")
        sim = start_snmpsim(None)
        sys.stdout.write(f"lab: {len(lab_devices())} simulated devices on udp 127.0.0.1:{sim.port}\n")

        (state / "controller.toml").write_text(controller_config(state, broker_port, http_port))
        microsoft = demo_tenants.start_microsoft_lab(stack, state, python, args.interval)
        cisco = start_cisco_lab(stack, state, python, args.interval)
        sys.stdout.write(init_database(python, state / "controller.toml") + "\n")  # and the command key
        (state / "agent.toml").write_text(
            agent_config(state, broker_port, sim.port, args.interval)
            + microsoft
            + cisco
            + agent_trust(state / "controller.toml")
        )
        token_file = state / "admin.token"
        token = create_admin_token(python, state / "controller.toml", token_file)
        sys.stdout.write(enroll_lab_site(state / "controller.toml") + "\n")
        controller = stack.start(
            "controller",
            [python, "-m", "controller", "--config", str(state / "controller.toml")],
            state / "controller.log",
        )
        url = f"http://127.0.0.1:{http_port}"
        _wait_http(f"{url}/healthz", controller, "the controller")
        sys.stdout.write(import_lab_catalog(url, token) + "\n")
        agent_argv = [python, "-m", "agent", "--config", str(state / "agent.toml")]
        stack.start("agent", agent_argv, state / "agent.log")

        sys.stdout.write(
            lab_campaign(url, token) + f"\nfernwart demo is running.\n"
            f"  console:  {url}/  (sign in with the admin token below)\n"
            f"  REST API: {url}/api/v1/devices  (Authorization: Bearer <token>)\n"
            f"  findings: {url}/api/v1/findings\n"
            f"  campaign: {url}/api/v1/campaigns\n"
            f"  metrics:  {url}/metrics\n"
            f"  logs and configs: {state}/\n"
            f"  CLI:      export FERNWART_TOKEN_FILE={token_file}\n"
            f"{probe_banner(state)}"
            f"  admin token (also in {token_file}):\n"
            f"{token}\n"
            f"Press Ctrl-C to stop.\n"
        )
        sys.stdout.flush()
        deadline = time.monotonic() + args.exit_after if args.exit_after else None
        while not stop_requested:
            for what, proc in stack.procs:
                if proc.poll() is not None:
                    sys.stderr.write(f"{what} exited with code {proc.returncode}; see {state}/{what}.log\n")
                    return exits.FAILURE
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(0.2)
    except RuntimeError as err:
        sys.stderr.write(f"demo failed to start: {err}\n")
        return exits.FAILURE
    else:
        sys.stdout.write("stopping …\n")
        return exits.OK
    finally:
        stack.stop()
        if sim is not None:
            sim.stop()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="run broker, lab, controller and agent on this machine")
    parser.add_argument("--state-dir", default="var/demo", help="where configs, logs and data go")
    parser.add_argument("--http-port", type=int, default=8080, help="console port (next free if taken)")
    parser.add_argument("--broker-port", type=int, default=18830, help="embedded broker port")
    parser.add_argument("--interval", type=float, default=15.0, help="poll interval of the lab devices, s")
    parser.add_argument("--exit-after", type=float, default=0, help="stop by itself after N seconds")
    parser.set_defaults(func=run_demo)
