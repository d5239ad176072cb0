"""``fernwart controller enroll|unenroll|enrollments|broker-config``: agent identities on MQTT.

They work on the controller's database directly (its ``--config``), no API needed:

* ``enroll --site S --agent A`` enrolls site S with agent A and prints the agent's broker
  password as the last line of stdout (shown once; the database keeps its hash only);
  ``--rotate`` gives the enrolled agent a new password instead.
* ``unenroll --site S`` revokes the enrollment: the site's messages are refused from then on,
  and the site may be enrolled again (with another agent too).
* ``enrollments [--json]`` lists the enrolled sites (never a password).
* ``broker-config --format mosquitto|emqx --out DIR`` writes the broker's users and ACL for every
  enrolled agent plus the controller (docs/broker.md). Run it again after every change above.

Exit codes: 0 done, 2 usage, 65 (EX_DATAERR) refused (already enrolled, not enrolled, bad id),
78 (EX_CONFIG) the configuration is unusable (the message names the key).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from controller.broker import BrokerConfigError, BrokerFile, BrokerUser, render_emqx, render_mosquitto
from controller.broker.passwd import hash_password
from controller.settings import ControllerSettings, load_settings
from controller.storage import Store
from controller.storage import enrollment as en
from controller.storage.guard import DatabaseNotInitialized
from fernwart_cli import exits
from runtime.config import ConfigError, config_error_lines


class _Refused(Exception):
    """The request cannot be granted; exit 65 with this message."""


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code


def _run(args: argparse.Namespace, action: Callable[[ControllerSettings, Store], Awaitable[int]]) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as err:
        sys.stderr.write("".join(f"{line}\n" for line in config_error_lines(err)))
        return exits.CONFIG

    async def main() -> int:
        async with Store.open(settings.database.url.get_secret_value(), create=False) as store:
            return await action(settings, store)

    try:
        return asyncio.run(main())
    except _Refused as err:
        return _fail(str(err), exits.DATAERR)
    except DatabaseNotInitialized as err:
        return _fail(str(err), exits.CONFIG)
    except en.EnrollmentError as err:
        return _fail(str(err), exits.DATAERR)
    except BrokerConfigError as err:
        return _fail(f"{args.config}: {err}", exits.CONFIG)


def _enroll(args: argparse.Namespace) -> int:
    async def action(_settings: ControllerSettings, store: Store) -> int:
        if args.rotate:
            current = await en.get_enrollment(store, args.site)
            if current is None or not current.active:
                raise _Refused(f"site {args.site!r} is not enrolled: enroll it without --rotate")
            if current.agent_id != args.agent:
                raise _Refused(
                    f"site {args.site!r} is enrolled for agent {current.agent_id!r}, not {args.agent!r}"
                )
            rotated = await en.rotate(store, args.site)
            if rotated is None:
                raise _Refused(f"site {args.site!r} is not enrolled")
            enrollment, password = rotated
        else:
            enrollment, password = await en.enroll(store, args.site, args.agent, enrolled_by=_operator())
        sys.stdout.write(
            f"site: {enrollment.site_id}\nagent: {enrollment.agent_id}\n"
            f"broker username: {enrollment.broker_username}\n"
            "next: run `fernwart controller broker-config` and reload the broker\n"
            "broker password (shown once; the agent's [mqtt] password):\n"
            f"{password}\n"
        )
        return exits.OK

    return _run(args, action)


def _unenroll(args: argparse.Namespace) -> int:
    async def action(_settings: ControllerSettings, store: Store) -> int:
        revoked = await en.unenroll(store, args.site)
        if revoked is None:
            raise _Refused(f"site {args.site!r} is not enrolled")
        sys.stdout.write(
            f"site {revoked.site_id} unenrolled (agent {revoked.agent_id}); "
            "run `fernwart controller broker-config` and reload the broker\n"
        )
        return exits.OK

    return _run(args, action)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _list(args: argparse.Namespace) -> int:
    async def action(_settings: ControllerSettings, store: Store) -> int:
        rows = await en.list_enrollments(store, include_revoked=args.all)
        if args.json:
            items = [{key: _jsonable(value) for key, value in row.public().items()} for row in rows]
            sys.stdout.write(json.dumps(items, indent=2) + "\n")
            return exits.OK
        sys.stdout.write("SITE  AGENT  PASSWORD  ENROLLED  REVOKED\n")
        for row in rows:
            revoked = row.revoked_at.isoformat() if row.revoked_at else "-"
            password = "yes" if row.has_password else "none (enroll --rotate)"
            sys.stdout.write(
                f"{row.site_id}  {row.agent_id}  {password}  {row.registered_at.isoformat()}  {revoked}\n"
            )
        return exits.OK

    return _run(args, action)


def _controller_user(settings: ControllerSettings, config: Path) -> BrokerUser:
    mqtt = settings.mqtt
    missing = [
        key
        for key, value in (("mqtt.username", mqtt.username), ("mqtt.password", mqtt.password))
        if not value
    ]
    if missing:
        raise BrokerConfigError(
            f"{' and '.join(missing)} not set: the controller's own broker user goes into the broker "
            f"configuration (set them in {config} or FERNWART_MQTT__USERNAME / FERNWART_MQTT__PASSWORD)"
        )
    assert mqtt.username is not None
    assert mqtt.password is not None
    return BrokerUser(mqtt.username, hash_password(mqtt.password.get_secret_value()))


def _write_files(directory: Path, files: list[BrokerFile]) -> None:
    """Each file replaced atomically (a broker reloading meanwhile reads the old or the new one),
    hashes mode 0600."""
    directory.mkdir(parents=True, exist_ok=True)
    for file in files:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{file.name}.")
        try:
            os.fchmod(fd, 0o600 if file.secret else 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(file.text)
            Path(tmp).replace(directory / file.name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _broker_config(args: argparse.Namespace) -> int:
    async def action(settings: ControllerSettings, store: Store) -> int:
        controller = _controller_user(settings, args.config)
        agents = [
            BrokerUser(agent, pw_hash, site) for site, agent, pw_hash in await en.broker_credentials(store)
        ]
        without = [row.site_id for row in await en.list_enrollments(store) if not row.has_password]
        out = args.out.resolve()
        prefix = settings.mqtt.prefix
        if args.format == "mosquitto":
            files = render_mosquitto(prefix, controller, agents, str(out))
        else:
            files = render_emqx(prefix, controller, agents)
        _write_files(out, files)
        names = ", ".join(file.name for file in files)
        sys.stdout.write(f"wrote {names} to {out}: {len(agents)} agents and the controller\n")
        for site in without:
            sys.stderr.write(f"warning: site {site} has no broker password yet: `enroll --rotate` it\n")
        return exits.OK

    return _run(args, action)


def _operator() -> str:
    try:
        return os.getlogin()[:128]
    except OSError:
        return f"uid {os.getuid()}"


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def add(name: str, help_: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_)
        parser.add_argument(
            "--config", required=True, type=Path, metavar="FILE", help="the controller's TOML"
        )
        return parser

    enroll = add("enroll", "enroll a site and its agent; prints the agent's broker password once")
    enroll.add_argument("--site", required=True)
    enroll.add_argument("--agent", required=True)
    enroll.add_argument("--rotate", action="store_true", help="a new password for the enrolled agent")
    enroll.set_defaults(func=_enroll)

    unenroll = add("unenroll", "revoke a site's enrollment (its messages are refused)")
    unenroll.add_argument("--site", required=True)
    unenroll.set_defaults(func=_unenroll)

    listing = add("enrollments", "list enrolled sites and agents")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--all", action="store_true", help="revoked enrollments too")
    listing.set_defaults(func=_list)

    broker = add("broker-config", "write the broker's users and ACL for the enrolled agents")
    broker.add_argument("--format", required=True, choices=("mosquitto", "emqx"))
    broker.add_argument("--out", required=True, type=Path, metavar="DIR")
    broker.set_defaults(func=_broker_config)
