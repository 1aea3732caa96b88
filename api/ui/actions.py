"""Page forms run the same use case as the API's action routes
(``chuangzheng.services.organisation_actions``), with the same body models (the table
``api.routers.actions.ACTIONS``), so a form and an API call cannot diverge.

Each form carries a key generated when the page was rendered; it becomes the command's
idempotency key (per user, as the API's ``Idempotency-Key``), so a double click or a
re-posted form has one effect.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from temporalio.client import Client

from api.auth import User
from api.errors import ApiError, as_api_error, validation_errors
from api.routers.actions import ACTIONS, Action
from chuangzheng.services.errors import ServiceError
from chuangzheng.services.organisation_actions import OrganisationAction, perform
from domain.state import Actor
from workflows.contracts import ActionResult

BY_ACTION: dict[OrganisationAction, Action] = {a.action: a for a in ACTIONS}


def action(name: str) -> Action:
    """The action whose Update is ``name`` (422 for an unknown one)."""
    try:
        return BY_ACTION[OrganisationAction(name)]
    except ValueError:
        raise ApiError(
            422, "invalid", "请求参数有误", [{"field": "action", "reason": "未知操作"}]
        ) from None


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
    """Validate ``fields`` with the action's body model and run the action (the caller has
    checked the organisation is in the user's scope); returns the Update's small result (the
    pages read the whole status themselves)."""
    chosen = action(name)
    try:
        body = chosen.body.model_validate(fields)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise ApiError(422, "invalid", "请求参数有误", validation_errors(errors)) from None
    extra = {"extension_id": fields["extension_id"]} if "extension_id" in fields else {}
    try:
        answer = await perform(
            client,
            actor=Actor(user=user.username, name=user.display_name, role=user.role, ip=ip),
            round_id=round_id,
            org_id=org_id,
            action=chosen.action,
            fields=body.model_dump(mode="json") | extra,
            idempotency_key=f"ui:{form_key}" if form_key else None,
            with_status=False,
        )
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return answer.result
