"""A result moves a job only when it answers that job's command from that job's site.

Attack (a compromised agent of another site, which the broker's ACL lets publish only on its own
``{site}/cmd_result``): the job id inside a result is the agent's word, and the channel hands a
result for a command it does not remember (another site's, or one never sent) on under that job
id. Before the fix, a forged FAILED result from site-2 failed a site-1 job and halted its campaign,
and a forged SUCCEEDED for a command never sent moved the job to ``succeeded``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.wire import ActionKind, ActionResult, ActionState, CommandResult, encode
from controller.campaigns.runner import CampaignRunner
from controller.commands import CommandChannel
from controller.settings import MqttSettings
from controller.storage import campaign_store
from tests.controller.test_campaigns_runner import Env, RecordingChannel, campaign, env, states  # noqa: F401
from tests.fixtures.net import free_port

PREFIX = "fernwart/v1"


def _result(site: str, command_id: str, job_id: str, device: str, state: ActionState) -> tuple[str, bytes]:
    doc = {
        "site_id": site,
        "agent_id": "agent-x",
        "sent_at": datetime.now(UTC),
        "command_id": uuid.UUID(command_id),
        "device_id": device,
        "ok": True,
        "job_id": job_id,
        "result": ActionResult(device_id=device, action=ActionKind.UPDATE, state=state, detail="forged?"),
    }
    return f"{PREFIX}/{site}/cmd_result", encode(CommandResult.model_validate(doc))


class _Sender(RecordingChannel):
    """Sends as the recorder does and remembers each job's command id."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, str] = {}

    async def send(self, site_id, request, *, expires_at, job_id):  # type: ignore[no-untyped-def]
        command_id = await super().send(site_id, request, expires_at=expires_at, job_id=job_id)
        self.ids[job_id] = command_id
        return command_id


async def test_only_the_sites_answer_to_the_sent_command_moves_a_job(env: Env) -> None:  # noqa: F811
    cid = await campaign(env, {"d1": 1}, failure_threshold_pct=1, failure_min_finished=1, retries=0)
    sender = _Sender()
    runner = CampaignRunner(env.store, sender, clock=lambda: env.now)
    await runner.step()
    (job,) = sender.jobs()
    assert (await states(env, cid))["d1"] == "running"
    # The controller's real result path: it did not send these (the recorder did), as after a restart.
    mqtt = MqttSettings(host="127.0.0.1", port=free_port(), client_id="ctl-test")
    results = CommandChannel(mqtt, Ed25519PrivateKey.generate())
    results.on_result(runner.on_result)

    # Job ids are small integers anyone can guess; command ids are random.
    forged = [
        _result("site-2", str(uuid.uuid4()), job, "d1", ActionState.FAILED),  # another site's agent
        _result("site-1", str(uuid.uuid4()), job, "d1", ActionState.FAILED),  # a command never sent
        _result("site-2", str(uuid.uuid4()), job, "d1", ActionState.SUCCEEDED),
        _result("site-1", str(uuid.uuid4()), job, "d2", ActionState.FAILED),  # another device
    ]
    for topic, payload in forged:
        assert await results.handle_result(topic, payload) == "executed"  # the channel cannot tell
    # Had another site's agent learned the command id, the site still gives it away (a second
    # controller instance here: the first one counts a command id once).
    other = CommandChannel(mqtt, Ed25519PrivateKey.generate())
    other.on_result(runner.on_result)
    await other.handle_result(*_result("site-2", sender.ids[job], job, "d1", ActionState.FAILED))
    assert (await states(env, cid))["d1"] == "running"
    row = await campaign_store.get_campaign(env.store, cid)
    assert row is not None
    assert row["state"] == "running"

    await results.handle_result(*_result("site-1", sender.ids[job], job, "d1", ActionState.SUCCEEDED))
    assert (await states(env, cid))["d1"] == "succeeded"
