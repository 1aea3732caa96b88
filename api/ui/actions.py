"""Page forms run the API's actions: the same table (``api.routers.actions.ACTIONS``), body
models, domain commands and workflow Updates, so a form and an API call cannot diverge.

Each form carries a key generated when the page was rendered; it becomes the command's
idempotency key (per user, as the API's ``Idempotency-Key``), so a double click or a
re-posted form has one effect.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from temporalio.client import Client

from api.auth import User
from api.errors import ApiError, validation_errors
from api.idempotency import command_key
from api.routers.actions import ACTIONS, Action
from api.workflow_calls import update
from domain.state import Actor
from workflows.contracts import ActionResult
from workflows.ids import organisation_workflow_id

BY_UPDATE: dict[str, Action] = {a.update: a for a in ACTIONS}


def action(name: str) -> Action:
    """The action whose Update is ``name`` (422 for an unknown one)."""
    found = BY_UPDATE.get(name)
    if found is None:
        raise ApiError(422, "invalid", "请求参数有误", [{"field": "action", "reason": "未知操作"}])
    return found


async def run_action(
    client: Client,
    user: User,
    ip: str | None,
    *,
    round_id: str,
    org_id: str,
    name: str,
    fields: dict[str, Any],
    form_key: str | None,
) -> ActionResult:
    """Validate ``fields`` with the action's body model, build its command and run its Update
    (the caller has checked the organisation is in the user's scope); returns the Update's
    small result (the pages read the whole status themselves)."""
    chosen = action(name)
    try:
        body = chosen.body.model_validate(fields)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise ApiError(422, "invalid", "请求参数有误", validation_errors(errors)) from None
    extra = {"extension_id": fields["extension_id"]} if "extension_id" in fields else {}
    cmd = chosen.command.model_validate(
        body.model_dump()
        | extra
        | {
            "actor": Actor(user=user.username, name=user.display_name, role=user.role, ip=ip),
            "idempotency_key": command_key(user, f"ui:{form_key}" if form_key else None),
        }
    )
    return await update(
        client, organisation_workflow_id(round_id, org_id), chosen.update, cmd, ActionResult
    )
