"""``chuangzheng accounts``: the accounts commands that need no one signed in, for the very
first account of a real county (nobody can sign in to create it on the admin page yet) and
for the county office's own account when its password is lost.

They act on the database named by the settings (``CZ_DATABASE_URL``), through the same
service as the API and the pages, audited as ``cli:<operating-system user>``. Where the
channels file (``CZ_CHANNELS_FILE``) gives the person their own e-mail address, the code is
mailed to them too; the printed code stays the one to hand over if the mail failed.

Many counties on one deployment: ``create-county`` creates a county (its 6-digit 行政区划代码
and name) with its first county office account, both or neither; ``create-county-office
--county`` another county office account of an existing county; ``create-supervisor`` a
city or province office's account with the counties it supervises (it reads them and acts
in none).

The database must be at the migrations' head, as for the API and the worker
(``chuangzheng.bootstrap.ensure_schema``): the commands never create tables on a database
the migrations manage, and outside production an empty database is migrated first, so it
holds what a migrated one does (the default county's row).
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from shlex import quote
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from chuangzheng.services.accounts import Admin, IssuedCode
    from chuangzheng.services.errors import ServiceError
    from chuangzheng.settings import Settings

#: Exit code for bad input, as the rest of the command line.
EXIT_BAD_INPUT = 2

app = typer.Typer(
    help="账号：创建县（区）及其县委活动办的第一个账号、市委/省委组织部账号、重置账号"
    "（打印一次性激活码）。"
)


def _settings() -> Settings:
    """The settings, with logging configured as the other commands do: warnings and errors
    only, structured and with the same redaction (a mail failure never prints a code)."""
    from chuangzheng.logging import configure_logging
    from chuangzheng.settings import get_settings

    settings = get_settings()
    configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    return settings


def _operator_name() -> str:
    return f"cli:{getpass.getuser()}"


def _operator(county: str | None = None) -> Admin:
    from chuangzheng.services.accounts import Admin
    from domain.organisation import DEFAULT_COUNTY, Role

    # Whoever runs the command holds the database: they act as the county's office.
    return Admin(
        user=_operator_name(),
        role=Role.COUNTY_OFFICE,
        county=DEFAULT_COUNTY if county is None else county,
    )


def _refused(exc: ServiceError, *, hint: str = "") -> typer.Exit:
    """Print the refusal, its field reasons, and what to do next (``hint``); exit code 2."""
    typer.echo(exc.message, err=True)
    for error in exc.errors:
        typer.echo(f"  {error.get('field')}：{error.get('reason')}", err=True)
    if hint:
        typer.echo(hint, err=True)
    return typer.Exit(code=EXIT_BAD_INPUT)


def _print_code(issued: IssuedCode) -> None:
    from chuangzheng.services.code_mail import MailOutcome, activation_url
    from chuangzheng.settings import get_settings
    from domain.calendar import SHANGHAI

    expires = issued.expires_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    typer.echo(f"账号：{issued.account.username}（{issued.account.display_name}）")
    typer.echo(f"激活码：{issued.code}")
    typer.echo(f"有效期至：{expires}（北京时间）")
    typer.echo(f"激活地址：{activation_url(get_settings().public_base_url)}")
    mailed = {
        MailOutcome.SENT: "已发送到本人邮箱",
        MailOutcome.FAILED: "发送到本人邮箱失败，请将激活码直接交给本人",
        MailOutcome.NONE: "未发送（渠道配置中没有本人邮箱）",
    }
    typer.echo(f"邮件：{mailed[issued.mail]}")
    typer.echo(
        "激活码只显示这一次（系统只保存其摘要）；遗失请再次运行 chuangzheng accounts reset。"
    )


@app.command("create-county-office")
def create_county_office(
    username: Annotated[str, typer.Argument(help="新账号，如 county-admin")],
    name: Annotated[str, typer.Option("--name", help="显示名，如 县委活动办张三")],
    county: Annotated[
        str | None, typer.Option("--county", help="所属县（区）代码；不填为默认县")
    ] = None,
) -> None:
    """为已有的县（区）创建县委活动办账号（无密码），打印一次性激活码。"""
    from chuangzheng.bootstrap import open_database
    from chuangzheng.services import counties
    from chuangzheng.services.code_mail import mailer_for
    from chuangzheng.services.errors import ServiceError
    from domain.organisation import DEFAULT_COUNTY

    settings = _settings()
    with open_database(settings) as database:
        try:
            issued = counties.create_county_office(
                database.sessions,
                _operator_name(),
                county=DEFAULT_COUNTY if county is None else county,
                username=username,
                display_name=name,
                now=datetime.now(UTC),
                mailer=mailer_for(settings),
            )
        except ServiceError as exc:
            hint = ""
            if exc.code == "unknown_county":
                wanted = county or ""
                code = (
                    quote(wanted)
                    if counties.DIVISION_CODE.fullmatch(wanted)
                    else "<县级行政区划代码>"
                )
                hint = (
                    "未创建账号。新的县（区）请用 chuangzheng accounts create-county "
                    f"{code} --name <县（区）名称> --office {quote(username)} "
                    "--office-name <显示名> 同时创建县（区）及其第一个账号。"
                )
            elif exc.code == "account_exists":
                hint = (
                    f"未创建账号：请换一个账号名后重新运行；若是该账号遗失了激活码，请运行 "
                    f"chuangzheng accounts reset {quote(username)}。"
                )
            raise _refused(exc, hint=hint) from None
    _print_code(issued)


@app.command("reset")
def reset(username: Annotated[str, typer.Argument(help="要重置的账号")]) -> None:
    """重置账号：清除密码、结束其所有登录，打印新的一次性激活码。"""
    from sqlalchemy import select

    from activities.tables import UserRow
    from chuangzheng.bootstrap import open_database
    from chuangzheng.services import accounts
    from chuangzheng.services.code_mail import mailer_for
    from chuangzheng.services.errors import ServiceError

    settings = _settings()
    with open_database(settings) as database:
        with database.sessions() as session:
            # The account's own county (an office above the county has none: "").
            county = session.scalar(select(UserRow.county).where(UserRow.username == username))
        try:
            issued = accounts.reset(
                database.sessions,
                _operator(county),
                username,
                now=datetime.now(UTC),
                mailer=mailer_for(settings),
            )
        except ServiceError as exc:
            raise _refused(exc) from None
    _print_code(issued)


@app.command("create-county")
def create_county(
    code: Annotated[str, typer.Argument(help="县（区）代码：6 位县级行政区划代码，如 360781")],
    name: Annotated[str, typer.Option("--name", help="县（区）名称，如 瑞金市")],
    office: Annotated[str, typer.Option("--office", help="县委活动办第一个账号，如 ruijin-admin")],
    office_name: Annotated[
        str, typer.Option("--office-name", help="该账号的显示名，如 瑞金市委活动办")
    ],
) -> None:
    """创建县（区）及其县委活动办的第一个账号（无密码），打印一次性激活码；两者同时创建，
    任一被拒绝则都不创建。"""
    from chuangzheng.bootstrap import open_database
    from chuangzheng.services import counties
    from chuangzheng.services.code_mail import mailer_for
    from chuangzheng.services.errors import ServiceError

    settings = _settings()
    with open_database(settings) as database:
        try:
            issued = counties.create_county_with_office(
                database.sessions,
                _operator_name(),
                code=code,
                name=name,
                username=office,
                display_name=office_name,
                now=datetime.now(UTC),
                mailer=mailer_for(settings),
            )
        except ServiceError as exc:
            if exc.code == "county_exists":
                hint = (
                    f"县（区）{code} 已存在，未创建账号。要为它再建县委活动办账号，请运行 "
                    f"chuangzheng accounts create-county-office {quote(office)} "
                    f"--name {quote(office_name)} --county {quote(code)}"
                )
            elif exc.code == "account_exists":
                hint = (
                    f"县（区）{code} 未创建（账号 {office} 已被使用）：请换一个 --office "
                    "账号名后重新运行本命令。"
                )
            else:
                hint = f"县（区）{code} 未创建，账号也未创建：请改正后重新运行本命令。"
            raise _refused(exc, hint=hint) from None
    typer.echo(f"已创建县（区）：{name}（{code}）")
    _print_code(issued)


@app.command("create-supervisor")
def create_supervisor(
    username: Annotated[str, typer.Argument(help="新账号，如 city-zzb")],
    name: Annotated[str, typer.Option("--name", help="显示名，如 赣州市委组织部")],
    county: Annotated[
        list[str], typer.Option("--county", help="所辖县（区）代码，可重复，如 --county 360781")
    ],
    province: Annotated[
        bool, typer.Option("--province", help="省委组织部（默认市委组织部）")
    ] = False,
) -> None:
    """创建市委或省委组织部账号（只能查看所辖县，不能在县内办理），打印一次性激活码。"""
    from chuangzheng.bootstrap import open_database
    from chuangzheng.services import counties
    from chuangzheng.services.code_mail import mailer_for
    from chuangzheng.services.errors import ServiceError
    from domain.organisation import Role

    settings = _settings()
    with open_database(settings) as database:
        try:
            issued = counties.create_supervisor(
                database.sessions,
                _operator_name(),
                username=username,
                display_name=name,
                role=Role.PROVINCE_OFFICE if province else Role.CITY_OFFICE,
                counties=county,
                now=datetime.now(UTC),
                mailer=mailer_for(settings),
            )
        except ServiceError as exc:
            raise _refused(exc) from None
    typer.echo(f"所辖县（区）：{'、'.join(sorted(set(county)))}")
    _print_code(issued)
