"""Broker password hashes against the installed Mosquitto: its tool's hashes verify with ours,
and the broker accepts ours (and nothing else)."""

from __future__ import annotations

import getpass
import hashlib
import shutil
import subprocess
from pathlib import Path

import aiomqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.broker.passwd import emqx_fields, hash_password, new_password, verify_password
from tests.fixtures.mqtt import MOSQUITTO
from tests.fixtures.net import free_port, terminate, wait_for_tcp

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def test_a_hash_made_by_mosquitto_passwd_verifies(tmp_path: Path) -> None:
    file = tmp_path / "passwd"
    subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(file), "alice", "s3cret pass"], check=True)
    username, encoded = file.read_text().strip().split(":", 1)
    assert username == "alice"
    assert encoded.startswith("$7$")
    assert verify_password("s3cret pass", encoded)
    assert not verify_password("s3cret pas", encoded)


async def test_mosquitto_accepts_our_hashes_and_only_the_right_password(tmp_path: Path) -> None:
    password = new_password()
    (tmp_path / "passwd").write_text(f"agent-1:{hash_password(password)}\n")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {tmp_path}/passwd\n"
        f"user {getpass.getuser()}\nlog_dest none\n"
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL)
    try:
        wait_for_tcp("127.0.0.1", port)
        async with aiomqtt.Client("127.0.0.1", port, username="agent-1", password=password, timeout=10):
            pass
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(
                "127.0.0.1", port, username="agent-1", password=password[:-1], timeout=10
            ):
                pass
    finally:
        terminate(proc)


@given(st.text(max_size=40), st.text(max_size=40))
def test_verify_accepts_only_the_password_hashed(password: str, other: str) -> None:
    encoded = hash_password(password, iterations=2)
    assert verify_password(password, encoded)
    assert verify_password(other, encoded) == (other == password)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "$6$101$abc$def",
        "$7$x$AAAA$AAAA",
        "$7$101$!!!$AAAA",
        "$7$101$AAAAAAAAAAAAAAAA$AAAA",
        "$7$0$QUFB$QUFB",
    ],
)
def test_malformed_hashes_never_verify(encoded: str) -> None:
    assert not verify_password("", encoded)


def test_the_same_hash_serves_emqx() -> None:
    """EMQX's built-in database: PBKDF2-SHA512 as a hex string of the key over the salt string."""
    encoded = hash_password("pw")
    key, salt, iterations = emqx_fields(encoded)
    assert key == hashlib.pbkdf2_hmac("sha512", b"pw", salt.encode(), iterations, 64).hex()
    assert len(salt) == 12
