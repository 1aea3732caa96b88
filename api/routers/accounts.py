"""Account administration (县委活动办; a township committee for its own organisations'
secretaries) and a person's own activation with their one-time code.

The use cases are ``chuangzheng.services.accounts`` and ``.activation``; the routes parse,
call them in the threadpool and map their errors (``api.errors.as_api_error``). Writes keep
stored answers per Idempotency-Key; the answers that carry a new activation code (create,
reset) are stored with the code left out, because only its hash may be kept: a replay says
the account was created or reset, and a lost code is replaced by resetting again. The printed
activation list is a POST (printing issues the codes): without a key, printing twice issues
twice; with one, a copy of the request is refused (409 ``already_issued``) rather than
issuing a second set.

Where the channels file (``CZ_CHANNELS_FILE``) gives a person their own e-mail address, the
code is also mailed to them (``chuangzheng.services.code_mail``); ``mailed`` in the answer
says whether it went out, and the printed list marks who was mailed. A replay mails nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import User
from api.blocking import run_sync
from api.deps import CurrentUser, SessionDep, SessionsDep, SettingsDep, client_ip
from api.errors import ApiError, as_api_error
from api.idempotency import (
    Answer,
    idempotency_key,
    idempotent,
    issue_once,
    request_fingerprint,
)
from api.responses import AUTHENTICATED, WITH_BODY, Timestamp, errors, file_response
from chuangzheng.services import accounts, activation
from chuangzheng.services.activation_lists import activation_list_pdf, activation_list_xlsx
from chuangzheng.services.code_mail import mailer_for
from chuangzheng.services.errors import ServiceError
from domain.organisation import Role

router = APIRouter(prefix="/api/v1", tags=["账号管理 accounts"])
T = TypeVar("T")

_ADMIN = errors(*AUTHENTICATED, 404, 422)
PDF = "application/pdf"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class AccountView(BaseModel):
    """An account as administrators see it (never a hash). ``activated``: a password is set;
    ``code_expires_at``/``code_used_at``: the latest activation code's state."""

    username: str
    display_name: str
    role: Role
    scope_key: str
    active: bool
    activated: bool
    source: str = Field(examples=["roster", "admin", "demo"])
    township: str | None
    org_name: str | None
    created_at: Timestamp
    updated_at: Timestamp | None
    password_changed_at: Timestamp | None
    code_expires_at: Timestamp | None
    code_used_at: Timestamp | None


class AccountPageView(BaseModel):
    """One page of accounts; ``total`` counts every match."""

    items: list[AccountView]
    total: int
    offset: int
    limit: int


class IssuedCodeView(BaseModel):
    """An account and its new one-time activation code. ``activation_code`` is null in a
    replayed answer (only the code's hash is kept; reset again for a new one). ``mailed``:
    the code was also sent to the person's own e-mail address (false when none is configured
    or the send failed: then hand the code over yourself)."""

    account: AccountView
    activation_code: str | None = Field(examples=["ABCD-EFGH-JKMN"])
    expires_at: Timestamp
    mailed: bool


class CreateAccount(BaseModel):
    """A new account: it has no password until its person activates it with the code."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    display_name: str = Field(min_length=1, max_length=200)
    role: Role
    scope_key: str = Field(default="", max_length=200)


class ChangeAccount(BaseModel):
    """What to change; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    scope_key: str | None = Field(default=None, max_length=200)


class ActivationListRequest(BaseModel):
    """Which township's list, in which format."""

    model_config = ConfigDict(extra="forbid")

    township: str = Field(min_length=1, max_length=200)
    format: Literal["pdf", "xlsx"] = "pdf"


class Activation(BaseModel):
    """A person's own activation: their account, the code they were handed, a new password."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64)
    new_password: str = Field(min_length=1, max_length=256)


class Activated(BaseModel):
    """The account is activated: sign in with the new password."""

    username: str
    display_name: str
    role: Role


def _admin(user: User, request: Request) -> accounts.Admin:
    return accounts.Admin(
        user=user.username,
        role=user.role,
        scope_key=user.scope_key,
        ip=client_ip(request),
        county=user.county,
    )


def _authorised(user: User, request: Request) -> accounts.Admin:
    """The caller as an administrator; 403 before anything else (even a stored answer)."""
    admin = _admin(user, request)
    try:
        accounts.authorise(admin)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return admin


def _view(account: accounts.Account) -> dict[str, Any]:
    return {
        "username": account.username,
        "display_name": account.display_name,
        "role": account.role.value,
        "scope_key": account.scope_key,
        "active": account.active,
        "activated": account.activated,
        "source": account.source,
        "township": account.township,
        "org_name": account.org_name,
        "created_at": account.created_at.isoformat(),
        "updated_at": account.updated_at.isoformat() if account.updated_at else None,
        "password_changed_at": (
            account.password_changed_at.isoformat() if account.password_changed_at else None
        ),
        "code_expires_at": account.code_expires_at.isoformat() if account.code_expires_at else None,
        "code_used_at": account.code_used_at.isoformat() if account.code_used_at else None,
    }


def _issued(issued: accounts.IssuedCode, *, with_code: bool = True) -> dict[str, Any]:
    return {
        "account": _view(issued.account),
        "activation_code": issued.code if with_code else None,
        "expires_at": issued.expires_at.isoformat(),
        "mailed": issued.mailed,
    }


def _call(func: Callable[[], T]) -> T:
    """Run a service call (in the threadpool), its refusals as API errors."""
    try:
        return func()
    except ServiceError as exc:
        raise as_api_error(exc) from None


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


async def _issuing(
    request: Request,
    sessions: SessionsDep,
    user: User,
    issue: Callable[[], accounts.IssuedCode],
    *,
    status_code: int,
) -> Response:
    """Run ``issue`` once per Idempotency-Key (a copy sent while it runs waits for it); the
    stored answer, which copies and retries get, leaves the code out."""
    key = idempotency_key(request)
    if key is None:
        issued = await run_sync(_call, issue)
        return Response(
            _json(_issued(issued)), status_code=status_code, media_type="application/json"
        )

    async def run() -> accounts.IssuedCode:
        return await run_sync(_call, issue)

    def kept(issued: accounts.IssuedCode) -> Answer:
        return Answer(status_code, _json(_issued(issued, with_code=False)))

    fingerprint = await request_fingerprint(request)
    result, answer = await issue_once(sessions, user.username, key, fingerprint, run, kept)
    if result is None:
        return Response(
            answer.body,
            status_code=answer.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    return Response(_json(_issued(result)), status_code=status_code, media_type="application/json")


@router.get(
    "/accounts",
    summary="账号列表与搜索",
    response_model=AccountPageView,
    responses=errors(*AUTHENTICATED, 422),
)
def list_accounts(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    q: Annotated[str | None, Query(max_length=100, description="账号或姓名包含")] = None,
    role: Role | None = None,
    scope_key: Annotated[str | None, Query(max_length=200)] = None,
    township: Annotated[str | None, Query(max_length=200)] = None,
    active: bool | None = None,
    activated: bool | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=accounts.MAX_PAGE)] = 50,
) -> dict[str, Any]:
    """The accounts the caller manages (the county office: all; a township: its own
    organisations' secretaries), filtered, by username, one page."""
    wanted = accounts.AccountFilter(
        q=q, role=role, scope_key=scope_key, township=township, active=active, activated=activated
    )
    page = _call(
        lambda: accounts.list_accounts(
            session, _admin(user, request), wanted, offset=offset, limit=limit
        )
    )
    return {
        "items": [_view(a) for a in page.items],
        "total": page.total,
        "offset": page.offset,
        "limit": page.limit,
    }


@router.post(
    "/accounts",
    status_code=201,
    summary="创建账号（返回一次性激活码）",
    response_model=IssuedCodeView,
    responses=errors(*AUTHENTICATED, 409, *WITH_BODY),
)
async def create_account(
    body: CreateAccount,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> Response:
    """A new account without a password, and its first activation code (shown once; also
    mailed to the person where their own address is configured)."""
    admin = _authorised(user, request)
    return await _issuing(
        request,
        sessions,
        user,
        lambda: accounts.create_account(
            sessions,
            admin,
            username=body.username,
            display_name=body.display_name,
            role=body.role,
            scope_key=body.scope_key,
            now=datetime.now(UTC),
            # In the threadpool with the rest: the first call reads the channels file.
            mailer=mailer_for(settings),
        ),
        status_code=201,
    )


@router.post(
    "/accounts/activation-lists",
    summary="打印乡镇激活码名单（签发激活码，PDF 或 Excel）",
    response_class=Response,
    responses={**file_response(PDF, XLSX), **errors(*AUTHENTICATED, 404, 409, *WITH_BODY)},
)
async def activation_list(
    body: ActivationListRequest,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> Response:
    """Issue a code to every account of the township not yet activated and return the list.
    Only hashes are kept, so printing IS issuing: printing again replaces the earlier codes.
    People with their own e-mail address configured are mailed their code too (column 邮件)."""
    admin = _authorised(user, request)

    def issue() -> activation.ActivationSheet:
        return _call(
            lambda: activation.issue_township_codes(
                sessions, admin, body.township, now=datetime.now(UTC), mailer=mailer_for(settings)
            )
        )

    key = idempotency_key(request)
    if key is None:
        sheet = await run_sync(issue)
    else:
        # The list is not kept (its codes are stored only as hashes): a copy of the request
        # is told the list was issued instead of issuing (and mailing) a second set.
        ran, _ = await issue_once(
            sessions,
            user.username,
            key,
            await request_fingerprint(request),
            lambda: run_sync(issue),
            lambda _sheet: Answer(200, b""),
        )
        if ran is None:
            raise ApiError(
                409,
                "already_issued",
                "此名单已按该 Idempotency-Key 签发，激活码只提供一次；"
                "如未收到文件，请换用新的键重新签发（此前的激活码将作废）",
            )
        sheet = ran
    render = activation_list_pdf if body.format == "pdf" else activation_list_xlsx
    data = await run_sync(render, sheet, settings.public_base_url)
    filename = f"{body.township}-激活码.{body.format}"
    return Response(
        data,
        media_type=PDF if body.format == "pdf" else XLSX,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/accounts/{username}", summary="账号详情", response_model=AccountView, responses=_ADMIN
)
def get_account(
    username: str, request: Request, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """One account the caller manages (others: 404, as if absent)."""
    return _view(_call(lambda: accounts.get_account(session, _admin(user, request), username)))


@router.patch(
    "/accounts/{username}",
    summary="修改姓名、角色或范围",
    response_model=AccountView,
    responses=errors(*AUTHENTICATED, 404, 409, *WITH_BODY),
)
async def change_account(
    username: str, body: ChangeAccount, request: Request, user: CurrentUser, sessions: SessionsDep
) -> Response:
    """Change what is given; the account must be the caller's to manage before and after."""
    admin = _authorised(user, request)

    def action() -> dict[str, Any]:
        return _view(
            _call(
                lambda: accounts.change(
                    sessions,
                    admin,
                    username,
                    display_name=body.display_name,
                    role=body.role,
                    scope_key=body.scope_key,
                    now=datetime.now(UTC),
                )
            )
        )

    return await idempotent(request, sessions, user, action)


@router.post(
    "/accounts/{username}/deactivate",
    summary="停用账号",
    response_model=AccountView,
    responses=errors(*AUTHENTICATED, 404, 409, 422),
)
async def deactivate(
    username: str, request: Request, user: CurrentUser, sessions: SessionsDep
) -> Response:
    """Stop the account: no sign-in, no activation; its sessions end."""
    admin = _authorised(user, request)

    def action() -> dict[str, Any]:
        return _view(
            _call(lambda: accounts.deactivate(sessions, admin, username, now=datetime.now(UTC)))
        )

    return await idempotent(request, sessions, user, action)


@router.post(
    "/accounts/{username}/reactivate",
    summary="恢复账号",
    response_model=AccountView,
    responses=errors(*AUTHENTICATED, 404, 422),
)
async def reactivate(
    username: str, request: Request, user: CurrentUser, sessions: SessionsDep
) -> Response:
    """Let the account sign in again."""
    admin = _authorised(user, request)

    def action() -> dict[str, Any]:
        return _view(
            _call(lambda: accounts.reactivate(sessions, admin, username, now=datetime.now(UTC)))
        )

    return await idempotent(request, sessions, user, action)


@router.post(
    "/accounts/{username}/reset",
    summary="重置账号（清除密码，签发新激活码）",
    response_model=IssuedCodeView,
    responses=errors(*AUTHENTICATED, 404, 422),
)
async def reset(
    username: str,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> Response:
    """Clear the password, end every session, issue a new code (replacing an earlier one;
    also mailed to the person where their own address is configured)."""
    admin = _authorised(user, request)
    return await _issuing(
        request,
        sessions,
        user,
        lambda: accounts.reset(
            sessions, admin, username, now=datetime.now(UTC), mailer=mailer_for(settings)
        ),
        status_code=200,
    )


@router.post(
    "/auth/activate",
    summary="用激活码激活账号并设置密码",
    response_model=Activated,
    responses=errors(*WITH_BODY),
)
async def activate(body: Activation, request: Request, sessions: SessionsDep) -> dict[str, Any]:
    """Set a password with a one-time code (no sign-in needed). A weak password: 422 with
    every reason; a wrong, used or expired code, or an unknown or stopped account: one 422
    that does not say which."""
    account = await run_sync(
        _call,
        lambda: activation.activate(
            sessions,
            username=body.username.strip(),
            code=body.code,
            new_password=body.new_password,
            ip=client_ip(request),
            now=datetime.now(UTC),
        ),
    )
    return {
        "username": account.username,
        "display_name": account.display_name,
        "role": account.role.value,
    }
