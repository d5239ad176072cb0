"""Start and stop snmpsim serving the lab recordings on a loopback UDP port.

``python -m lab.snmpsim --port 16100`` serves until SIGINT/SIGTERM and prints the devices with
their communities. From code: ``sim = start_snmpsim()`` … ``sim.stop()``, or
``with running_snmpsim() as sim:``. snmpsim 1.2 needs pysmi installed next to it, and, run as
root, ``SNMPSIM_ALLOW_ROOT=true`` (otherwise it insists on dropping privileges).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gufo.snmp import SnmpError
from gufo.snmp.sync import SnmpSession

from lab.devices import RECORDINGS, lab_devices

SYS_NAME = "1.3.6.1.2.1.1.5.0"


def responder_path() -> Path:
    """snmpsim-command-responder of this interpreter's environment (the venv's bin dir)."""
    beside = Path(sys.executable).parent / "snmpsim-command-responder"
    if beside.exists():
        return beside
    found = shutil.which("snmpsim-command-responder")
    if found is None:
        raise FileNotFoundError("snmpsim-command-responder not found; install fernwart[lab]")
    return Path(found)


def free_udp_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class SnmpSim:
    """A running snmpsim; ``stop()`` ends it by its PID and removes its index cache."""

    host: str
    port: int
    data_dir: Path
    proc: subprocess.Popen[bytes]
    workdir: Path
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.workdir / "snmpsim.log"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _answers(host: str, port: int, community: str) -> bool:
    try:
        with SnmpSession(addr=host, port=port, community=community, timeout=0.5) as session:
            session.get(SYS_NAME)
    except (TimeoutError, OSError, SnmpError):
        return False
    return True


def start_snmpsim(
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    data_dir: Path = RECORDINGS,
    probe_community: str | None = None,
    timeout_s: float = 60.0,
) -> SnmpSim:
    """Start snmpsim on ``host:port`` (a free port when None) and return once it answers.

    Raises RuntimeError with the end of its log when it exits or does not answer in time.
    """
    if port is None:
        port = free_udp_port(host)
    if probe_community is None:
        probe_community = next(iter(sorted(p.stem for p in data_dir.glob("*.snmprec"))), "public")
    workdir = Path(tempfile.mkdtemp(prefix="fernwart-snmpsim-"))
    env = dict(os.environ, SNMPSIM_ALLOW_ROOT="true")
    log = workdir / "snmpsim.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv of our own venv, no shell
            [
                str(responder_path()),
                f"--data-dir={data_dir}",
                f"--cache-dir={workdir / 'cache'}",
                f"--agent-udpv4-endpoint={host}:{port}",
                "--logging-method=stderr",
                "--log-level=error",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    sim = SnmpSim(host, port, data_dir, proc, workdir)
    deadline = time.monotonic() + timeout_s
    while not _answers(host, port, probe_community):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:]
            sim.stop()
            raise RuntimeError(f"snmpsim on {host}:{port} did not answer: {tail}")
        time.sleep(0.1)
    return sim


@contextlib.contextmanager
def running_snmpsim(
    port: int | None = None, *, host: str = "127.0.0.1", data_dir: Path = RECORDINGS
) -> Iterator[SnmpSim]:
    sim = start_snmpsim(port, host=host, data_dir=data_dir)
    try:
        yield sim
    finally:
        sim.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.snmpsim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=16100)
    args = parser.parse_args(argv)
    stop = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with running_snmpsim(args.port, host=args.host) as sim:
        sys.stdout.write(f"snmpsim pid {sim.pid} on {sim.host}:{sim.port}\n")
        for device in lab_devices():
            sys.stdout.write(
                f"  {device.id:20} community={device.community:28} {device.vendor} {device.model}\n"
            )
        sys.stdout.flush()
        while not stop and sim.proc.poll() is None:
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
