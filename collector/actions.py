"""What an agent asks a vendor driver to do, and what came of it. Pure pydantic, no I/O.

A request names one device of the source, one action and, for an update, the target version
(and where the device fetches it, for on-premises codecs that pull from the customer's package
host). The driver performs the action through the vendor API and follows the vendor's operation
to its end state, bounded by ``deadline``. Where no API can perform the action, the result is
``manual`` with the steps an operator must take and where — never a pretended success.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from collector.model import DeviceId, ShortText


class ActionKind(StrEnum):
    RESTART = "restart"
    UPDATE = "update"
    LOGS = "logs"  # collect and upload a log bundle


class ActionState(StrEnum):
    SUCCEEDED = "succeeded"  # the vendor reported the operation done (updates: verified later by version)
    FAILED = "failed"  # the vendor reported failure, or refused the request
    TIMED_OUT = "timed_out"  # still running at the deadline; its outcome is unknown
    MANUAL = "manual"  # no API can do this: ``manual_steps`` says what the operator must do


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionRequest(_Model):
    device_id: DeviceId
    action: ActionKind
    target_version: ShortText | None = None  # updates only
    package_url: Annotated[str, StringConstraints(max_length=2048)] | None = None  # on-prem pulls
    deadline: datetime  # aware; the driver stops following the operation then


class ActionResult(_Model):
    device_id: DeviceId
    action: ActionKind
    state: ActionState
    # The vendor's operation/request id, so the NOC can find it in the vendor's console or logs.
    operation_id: ShortText | None = None
    detail: ShortText = ""  # words for people: the vendor's final status, or why it failed
    manual_steps: list[ShortText] = Field(default_factory=list, max_length=32)
    console_url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    # Every state the vendor reported on the way, in order (e.g. "notStarted", "pending", "done").
    history: list[ShortText] = Field(default_factory=list, max_length=256)
