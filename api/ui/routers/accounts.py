"""Account administration pages (县委活动办; a township committee for its own
organisations' secretaries) and the public activation page.

Every page calls ``chuangzheng.services.accounts`` or ``.activation`` (a signed-in person's
own password page, ``/ui/password``: ``.sign_in``); refusals become the
dashboard's error page with their status (``UiRoute``), except a refused new account: the
list page again, with the form as typed and what to correct. A new code (create, reset) is shown
once on a page that is never cached; the printed township list is a file download, and the
page says that printing again replaces the codes it printed before. Where the channels file
gives the person their own e-mail address, the code is mailed to them too, and the page says
whether it went out (``chuangzheng.services.code_mail``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.tables import OrganisationRow
from api.auth import User
from api.blocking import run_sync
from api.deps import SessionDep, SessionsDep, SettingsDep, client_ip
from api.errors import ApiError, as_api_error
from api.ui.forms import STILL_RUNNING, error_text, issued_once, submitted_once
from api.ui.render import page
from api.ui.session import COOKIE, UiRoute, UiUser, redirect, same_origin
from chuangzheng.services import accounts, activation, sign_in
from chuangzheng.services.activation_lists import (
    REPLACES_WARNING,
    activation_list_pdf,
    activation_list_xlsx,
)
from chuangzheng.services.code_mail import MailOutcome, mailer_for
from chuangzheng.services.errors import ServiceError
from chuangzheng.services.sign_in import SignInRefused, SignInVia, Throttled
from domain.accounts import MIN_PASSWORD_LENGTH
from domain.organisation import Role

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
PAGE = 50
PDF = "application/pdf"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_NO_STORE = {"Cache-Control": "no-store"}
# What a copy of a code-issuing form (a double click) is told: the codes went to the first
# copy's page or file, which cannot be shown again.
_CREATED_ONCE = "账号已按第一次提交创建；激活码只显示一次，如未看到，请在本页重置账号"
_RESET_ONCE = "账号已按第一次提交重置；激活码只显示一次，如未看到，请再次重置"
_LIST_PRINTED_ONCE = (
    "名单已按第一次提交签发；如未得到文件，请刷新本页后重新签发（此前打印的激活码将作废）"
)
T = TypeVar("T")


def _admin(user: User, request: Request) -> accounts.Admin:
    return accounts.Admin(
        user=user.username,
        role=user.role,
        scope_key=user.scope_key,
        ip=client_ip(request),
        county=user.county,
    )


def _call(func: Callable[[], T]) -> T:
    try:
        return func()
    except ServiceError as exc:
        raise as_api_error(exc) from None


def _flag(text: str) -> bool | None:
    return {"1": True, "0": False}.get(text)


def _role(text: str) -> Role | None:
    try:
        return Role(text) if text else None
    except ValueError:
        raise ApiError(
            422, "invalid", "请求参数有误", [{"field": "role", "reason": "取值不在允许范围内"}]
        ) from None


def _own_orgs(session: SessionDep, township: str) -> list[tuple[str, str]]:
    stmt = (
        select(OrganisationRow.org_id, OrganisationRow.name)
        .where(OrganisationRow.township == township, OrganisationRow.active.is_(True))
        .order_by(OrganisationRow.name)
    )
    return [(org_id, name) for org_id, name in session.execute(stmt).all()]


@router.get("/accounts")
def accounts_page(
    request: Request,
    session: SessionDep,
    user: UiUser,
    q: str = "",
    role: str = "",
    township: str = "",
    active: str = "",
    activated: str = "",
    offset: int = 0,
    msg: str = "",
) -> Response:
    """The accounts the caller manages, searched and filtered, with their actions."""
    filters = {"q": q, "role": role, "township": township, "active": active}
    context = _accounts_context(
        session, user, _admin(user, request), filters | {"activated": activated}, offset
    )
    return page(request, "accounts.html", context | {"msg": msg})


def _accounts_context(
    session: Session, user: User, admin: accounts.Admin, filters: dict[str, str], offset: int
) -> dict[str, Any]:
    wanted = accounts.AccountFilter(
        q=filters["q"] or None,
        role=_role(filters["role"]),
        township=filters["township"] or None,
        active=_flag(filters["active"]),
        activated=_flag(filters["activated"]),
    )
    found = _call(
        lambda: accounts.list_accounts(session, admin, wanted, offset=max(offset, 0), limit=PAGE)
    )
    towns = _call(lambda: activation.townships(session, admin))
    return {
        "user": user,
        "found": found,
        "filters": filters,
        "townships": towns,
        "own_orgs": _own_orgs(session, user.scope_key) if user.role is Role.TOWNSHIP else [],
        "roles": [r for r in Role] if user.role is Role.COUNTY_OFFICE else [Role.SECRETARY],
        "page_size": PAGE,
        "warning": REPLACES_WARNING,
        "form_key": uuid.uuid4().hex,
        # The new-account form's fields as typed (refilled after a refusal).
        "typed": {},
    }


#: The filters of an unfiltered list (the page a refused new-account form shows again).
_NO_FILTERS = {"q": "", "role": "", "township": "", "active": "", "activated": ""}


@router.get("/accounts/{username}")
def account_page(
    request: Request, session: SessionDep, user: UiUser, username: str, msg: str = ""
) -> Response:
    """One account: its state and the forms that change it."""
    account = _call(lambda: accounts.get_account(session, _admin(user, request), username))
    context: dict[str, Any] = {
        "user": user,
        "account": account,
        "roles": [r for r in Role] if user.role is Role.COUNTY_OFFICE else [Role.SECRETARY],
        "own_orgs": _own_orgs(session, user.scope_key) if user.role is Role.TOWNSHIP else [],
        "msg": msg,
        "form_key": uuid.uuid4().hex,
    }
    return page(request, "account.html", context)


def _code_page(request: Request, user: User, issued: accounts.IssuedCode, title: str) -> Response:
    context = {"user": user, "issued": issued, "title": title, "outcomes": MailOutcome}
    response = page(request, "account_code.html", context)
    response.headers.update(_NO_STORE)
    return response


@router.post("/accounts")
async def create_submit(
    request: Request,
    sessions: SessionsDep,
    settings: SettingsDep,
    user: UiUser,
    username: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    scope_key: Annotated[str, Form()] = "",
    form_key: Annotated[str, Form()] = "",
) -> Response:
    """Create an account; its first code is shown once."""
    same_origin(request)
    admin = _admin(user, request)
    new_role = _role(role) or Role.SECRETARY
    name = username.strip()

    async def issue() -> Response:
        issued = await run_sync(
            _call,
            lambda: accounts.create_account(
                sessions,
                admin,
                username=name,
                display_name=display_name,
                role=new_role,
                scope_key=scope_key.strip(),
                now=datetime.now(UTC),
                mailer=mailer_for(settings),
            ),
        )
        return _code_page(request, user, issued, "账号已创建")

    try:
        return await issued_once(
            sessions,
            user,
            form_key,
            issue,
            again=lambda: redirect(f"/ui/accounts/{quote(name)}", msg=_CREATED_ONCE),
            busy=lambda: redirect("/ui/accounts", msg=STILL_RUNNING),
        )
    except ApiError as exc:
        if exc.status_code not in (403, 409, 422):
            raise
        # The refusal gave the form's key back: the list page again with the form as typed
        # and what to correct, not an error page whose only way on is 返回首页.
        typed = {"username": name, "display_name": display_name, "role": role,
                 "scope_key": scope_key}  # fmt: skip
        return await run_sync(_create_refused, request, sessions, user, admin, exc, typed)


def _create_refused(
    request: Request,
    sessions: sessionmaker[Session],
    user: User,
    admin: accounts.Admin,
    exc: ApiError,
    typed: dict[str, str],
) -> Response:
    with sessions() as session:
        context = _accounts_context(session, user, admin, dict(_NO_FILTERS), 0)
    context |= {"typed": typed, "error": error_text(exc)}
    return page(request, "accounts.html", context, status_code=exc.status_code)


@router.post("/accounts/activation-list")
async def activation_list_submit(
    request: Request,
    sessions: SessionsDep,
    settings: SettingsDep,
    user: UiUser,
    township: Annotated[str, Form()] = "",
    format: Annotated[str, Form()] = "pdf",
    form_key: Annotated[str, Form()] = "",
) -> Response:
    """Issue codes to the township's accounts not yet activated and download the list."""
    same_origin(request)
    admin = _admin(user, request)
    xlsx = format == "xlsx"

    def printed() -> bytes:
        sheet = _call(
            lambda: activation.issue_township_codes(
                sessions, admin, township, now=datetime.now(UTC), mailer=mailer_for(settings)
            )
        )
        return (activation_list_xlsx if xlsx else activation_list_pdf)(
            sheet, settings.public_base_url
        )

    async def issue() -> Response:
        data = await run_sync(printed)
        filename = f"{township}-激活码.{'xlsx' if xlsx else 'pdf'}"
        headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"}
        return Response(data, media_type=XLSX if xlsx else PDF, headers={**headers, **_NO_STORE})

    return await issued_once(
        sessions,
        user,
        form_key,
        issue,
        again=lambda: redirect("/ui/accounts", msg=_LIST_PRINTED_ONCE),
        busy=lambda: redirect("/ui/accounts", msg=STILL_RUNNING),
    )


@router.post("/accounts/{username}/reset")
async def reset_submit(
    request: Request,
    sessions: SessionsDep,
    settings: SettingsDep,
    user: UiUser,
    username: str,
    form_key: Annotated[str, Form()] = "",
) -> Response:
    """Clear the password and show the new code once (and whether it was mailed)."""
    same_origin(request)
    admin = _admin(user, request)

    async def issue() -> Response:
        issued = await run_sync(
            _call,
            lambda: accounts.reset(
                sessions, admin, username, now=datetime.now(UTC), mailer=mailer_for(settings)
            ),
        )
        return _code_page(request, user, issued, "账号已重置")

    account = f"/ui/accounts/{quote(username)}"
    return await issued_once(
        sessions,
        user,
        form_key,
        issue,
        again=lambda: redirect(account, msg=_RESET_ONCE),
        busy=lambda: redirect(account, msg=STILL_RUNNING),
    )


@router.post("/accounts/{username}/deactivate")
def deactivate_submit(
    request: Request, sessions: SessionsDep, user: UiUser, username: str
) -> Response:
    same_origin(request)
    admin = _admin(user, request)
    _call(lambda: accounts.deactivate(sessions, admin, username, now=datetime.now(UTC)))
    return redirect(f"/ui/accounts/{quote(username)}", msg="账号已停用")


@router.post("/accounts/{username}/reactivate")
def reactivate_submit(
    request: Request, sessions: SessionsDep, user: UiUser, username: str
) -> Response:
    same_origin(request)
    admin = _admin(user, request)
    _call(lambda: accounts.reactivate(sessions, admin, username, now=datetime.now(UTC)))
    return redirect(f"/ui/accounts/{quote(username)}", msg="账号已恢复")


@router.post("/accounts/{username}/change")
def change_submit(
    request: Request,
    sessions: SessionsDep,
    user: UiUser,
    username: str,
    display_name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    scope_key: Annotated[str, Form()] = "",
) -> Response:
    """Change the display name, role or scope (blank fields stay as they are)."""
    same_origin(request)
    admin = _admin(user, request)
    _call(
        lambda: accounts.change(
            sessions,
            admin,
            username,
            display_name=display_name.strip() or None,
            role=_role(role),
            scope_key=scope_key.strip() if scope_key.strip() or role else None,
            now=datetime.now(UTC),
        )
    )
    return redirect(f"/ui/accounts/{quote(username)}", msg="已保存")


# ----- the public activation page -------------------------------------------------------------


def _activate_page(request: Request, context: dict[str, Any], status_code: int = 200) -> Response:
    base = {"min_length": MIN_PASSWORD_LENGTH, "errors": [], "username": "", "done": False}
    response = page(request, "activate.html", {**base, **context}, status_code=status_code)
    response.headers.update(_NO_STORE)
    return response


@router.get("/activate")
def activate_form(request: Request, username: str = "") -> Response:
    """Username, code and a new password twice; no sign-in needed."""
    return _activate_page(request, {"username": username})


@router.post("/activate")
def activate_submit(
    request: Request,
    sessions: SessionsDep,
    username: Annotated[str, Form()] = "",
    code: Annotated[str, Form()] = "",
    new_password: Annotated[str, Form()] = "",
    new_password_again: Annotated[str, Form()] = "",
) -> Response:
    """Set the password with the code; every problem is listed on the form again."""
    same_origin(request)
    name = username.strip()
    if new_password != new_password_again:
        errors = [{"field": "new_password_again", "reason": "两次输入的密码不一致"}]
        return _activate_page(request, {"username": name, "errors": errors}, 422)
    try:
        activation.activate(
            sessions,
            username=name,
            code=code,
            new_password=new_password,
            ip=client_ip(request),
            now=datetime.now(UTC),
        )
    except ServiceError as exc:
        context = {"username": name, "errors": exc.errors, "error": exc.message}
        return _activate_page(request, context, 422)
    return _activate_page(request, {"username": name, "done": True})


# ----- a signed-in person's own password --------------------------------------------------------

PASSWORD_PAGE = "/ui/password"
_PASSWORD_CHANGED = "密码已修改，该账号在其他浏览器、设备上的登录已失效"


@router.get("/password")
def password_form(request: Request, user: UiUser, msg: str = "", error: str = "") -> Response:
    """The caller's own password (any role): the current one and the new one twice. The
    form runs once per rendering (``form_key``); its password fields are never refilled."""
    context = {
        "user": user,
        "min_length": MIN_PASSWORD_LENGTH,
        "form_key": uuid.uuid4().hex,
        "msg": msg,
        "error": error,
    }
    response = page(request, "password.html", context)
    response.headers.update(_NO_STORE)
    return response


@router.post("/password")
async def password_submit(
    request: Request,
    sessions: SessionsDep,
    settings: SettingsDep,
    user: UiUser,
    current_password: Annotated[str, Form()] = "",
    new_password: Annotated[str, Form()] = "",
    new_password_again: Annotated[str, Form()] = "",
    form_key: Annotated[str, Form()] = "",
) -> Response:
    """Change the password as the API does (``sign_in.change_password``: a wrong current
    password counts as a failed sign-in). The page's own session goes on under the new token
    (its cookie renewed); a refusal comes back as the form's message, nothing typed kept."""
    same_origin(request)
    token = request.cookies.get(COOKIE, "")

    def change() -> sign_in.SignedIn:
        with sessions() as session:
            return sign_in.change_password(
                session,
                token,
                current_password=current_password,
                new_password=new_password,
                new_password_again=new_password_again,
                ip=client_ip(request),
                via=SignInVia.PAGE,
                settings=settings,
            )

    async def submit() -> tuple[Response, bool]:
        try:
            signed_in = await run_sync(change)
        except (SignInRefused, Throttled) as exc:
            return redirect(PASSWORD_PAGE, error=exc.message), False
        except ServiceError as exc:
            return redirect(PASSWORD_PAGE, error=error_text(as_api_error(exc))), False
        # UiRoute sends the renewed login with whatever answer this request ends with.
        request.state.renewed_login = signed_in
        return redirect(PASSWORD_PAGE, msg=_PASSWORD_CHANGED), True

    return await submitted_once(
        sessions,
        user,
        form_key,
        submit,
        busy=lambda: redirect(PASSWORD_PAGE, error=STILL_RUNNING),
    )
