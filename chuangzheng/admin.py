"""Administrator commands that go through the HTTP API, so they are scoped, audited and
idempotent exactly like the UI: import a roster, create and kick off a round with a progress
bar, show a round's status.

The API address comes from ``--api`` or ``CZ_API_URL``, else from the settings the service
itself listens on (``CZ_API_HOST``/``CZ_API_PORT``, ``0.0.0.0`` reached as ``127.0.0.1``), so
the commands talk to this instance and never to another one on a shared host. The account
comes from ``--user``/``--password`` or ``CZ_API_USER``/``CZ_API_PASSWORD``; only in
development (``CZ_ENVIRONMENT=development``) do they default to the demo county office
account (county / demo).

Mistakes print one Chinese line and exit with 2 (a missing file, a bad address, a refused
request); a service that cannot be reached or fails exits with 1.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from urllib.parse import urlsplit

import httpx
import typer

from chuangzheng.api_client import SignedInAuth
from domain.lights import Light
from domain.phases import WORKING_PHASES, Phase

if TYPE_CHECKING:
    from chuangzheng.settings import Settings

#: Exit codes: a mistake of the person at the keyboard, and a failure of the service.
EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1
#: The demo county office account (``chuangzheng.demo_users``), which exists only in
#: development: the only place the commands fall back to it.
DEMO_USER = "county"
DEMO_PASSWORD = "demo"  # public, and only ever used in development
#: Seconds the API has to answer one request.
TIMEOUT_SECONDS = 60

ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--api",
        envvar="CZ_API_URL",
        help="API 地址（未给出时为本机的 CZ_API_HOST:CZ_API_PORT）",
        show_default=False,
    ),
]
ApiUser = Annotated[
    str | None,
    typer.Option(
        "--user",
        envvar="CZ_API_USER",
        help="账号（仅开发环境默认为演示账号 county）",
        show_default=False,
    ),
]
ApiPassword = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar="CZ_API_PASSWORD",
        help="密码（仅开发环境默认为演示密码）",
        show_default=False,
    ),
]

#: ``status`` of a round (``activities.round_contracts.RoundStatus``) as people read it.
ROUND_STATUS_LABELS = {
    "created": "尚未启动",
    "running": "进行中",
    "completed": "已完成",
    "failed": "运行失败",
    "closed": "已结束",
}


def bad_input(message: str) -> NoReturn:
    """Print ``message`` on stderr and exit with 2 (a mistake in the command)."""
    typer.echo(message, err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def failure(message: str) -> NoReturn:
    """Print ``message`` on stderr and exit with 1 (the service failed or is unreachable)."""
    typer.echo(message, err=True)
    raise typer.Exit(EXIT_FAILURE)


def file_problem(path: Path, exc: OSError | UnicodeDecodeError) -> str:
    """Why ``path`` could not be read, in one Chinese line naming it."""
    if isinstance(exc, UnicodeDecodeError):
        return f"无法读取文件：{path}（不是 UTF-8 编码的文本文件）"
    if isinstance(exc, FileNotFoundError):
        why = "文件不存在"
    elif isinstance(exc, IsADirectoryError):
        why = "这是一个目录，不是文件"
    elif isinstance(exc, PermissionError):
        why = "没有读取权限"
    else:
        why = exc.strerror or str(exc)
    return f"无法读取文件：{path}（{why}）"


def read_bytes(path: Path) -> bytes:
    """The file's bytes, or exit 2 naming it."""
    try:
        return path.read_bytes()
    except OSError as exc:
        bad_input(file_problem(path, exc))


def read_text(path: Path) -> str:
    """The file's UTF-8 text, or exit 2 naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        bad_input(file_problem(path, exc))


def default_api_url(settings: Settings) -> str:
    """Where this instance's API listens, as a client reaches it: ``CZ_API_HOST`` and
    ``CZ_API_PORT``, a wildcard host (``0.0.0.0``, ``::``) reached on the loopback."""
    host = settings.api_host.strip()
    if host in ("", "0.0.0.0"):  # listening everywhere: reached on the loopback
        host = "127.0.0.1"
    elif host.strip("[]") == "::":
        host = "::1"
    host = host.strip("[]")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"http://{host}:{settings.api_port}"


@dataclass(frozen=True)
class Connection:
    """Where the API is and whom to sign in as."""

    url: str
    user: str
    password: str


def api_connection(api: str | None, user: str | None, password: str | None) -> Connection:
    """The options, with the settings' defaults for what they leave out (see the module);
    exits with 2 when the address is not an HTTP URL or, outside development, the account
    is not given."""
    settings = None
    if api is None or user is None or password is None:
        from chuangzheng.settings import get_settings

        settings = get_settings()
    if api is None:
        assert settings is not None
        api = default_api_url(settings)
    url = api.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        bad_input(f"API 地址有误：{url!r}（应如 http://127.0.0.1:8000）")
    if user is None or password is None:
        assert settings is not None
        if settings.environment != "development":
            missing = "、".join(
                name
                for name, value in (("--user", user), ("--password", password))
                if value is None
            )
            bad_input(
                f"未给出 API 账号（缺 {missing}）：请用 --user 和 --password，或设置 "
                "CZ_API_USER 和 CZ_API_PASSWORD；演示账号只在开发环境"
                f"（CZ_ENVIRONMENT=development）中默认使用，当前为 {settings.environment}"
            )
        user = DEMO_USER if user is None else user
        password = DEMO_PASSWORD if password is None else password
    return Connection(url=url.rstrip("/"), user=user, password=password)


@contextlib.contextmanager
def _client(api: str | None, user: str | None, password: str | None) -> Iterator[httpx.Client]:
    """A client logged in as the account (:func:`api_connection`); exits with the API's
    message when login fails, and with one line (exit 1) when the API cannot be reached."""
    connection = api_connection(api, user, password)
    url = connection.url
    try:
        with httpx.Client(base_url=url, timeout=TIMEOUT_SECONDS) as client:
            response = client.post(
                "/api/v1/auth/login",
                json={"username": connection.user, "password": connection.password},
            )
            body = _check(response)
            # Tokens last half an hour: a long progress loop signs in again when one expires.
            client.auth = SignedInAuth(
                connection.user, connection.password, token=body["access_token"]
            )
            yield client
    except (httpx.ConnectError, httpx.ConnectTimeout):
        failure(f"无法连接 API（{url}），请确认服务已启动或用 --api 指定地址")
    except httpx.TimeoutException:
        failure(f"API（{url}）未在 {TIMEOUT_SECONDS} 秒内应答，请稍后重试")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        bad_input(f"API 地址有误：{url!r}（应如 http://127.0.0.1:8000）")
    except httpx.TransportError as exc:
        failure(f"与 API（{url}）的连接中断：{exc or type(exc).__name__}，请稍后重试")


def _check(response: httpx.Response) -> Any:
    """The JSON body; otherwise the API's message and each field error once, in Chinese,
    and exit 2 for a refused request (4xx) or 1 for a failure of the service (5xx)."""
    code = EXIT_FAILURE if response.status_code >= 500 else EXIT_BAD_INPUT
    try:
        body = response.json()
    except ValueError:
        snippet = " ".join(response.text.split())[:120]
        typer.echo(
            f"错误 {response.status_code}：应答不是本服务的格式（{snippet or '空'}），"
            "请确认 --api 指向本服务",
            err=True,
        )
        raise typer.Exit(EXIT_FAILURE if response.is_success else code) from None
    if response.is_success:
        return body
    if not isinstance(body, dict):
        body = {"message": str(body)}
    message = str(body.get("message") or body.get("detail") or "")
    errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
    # A refusal of several fields says them all in its message too (joined): each is
    # printed once, on its own line.
    if errors and all(str(e.get("reason", "")) in message for e in errors):
        message = f"共 {len(errors)} 处错误："
    typer.echo(f"错误 {response.status_code}：{message}", err=True)
    for error in errors:
        typer.echo(f"  {error.get('field')}：{error.get('reason')}", err=True)
    raise typer.Exit(code)


def import_roster(
    file: Annotated[Path, typer.Argument(help="组织名册（.csv 或 .xlsx，第 1 行为表头）")],
    api: ApiUrl = None,
    user: ApiUser = None,
    password: ApiPassword = None,
) -> None:
    """导入组织名册（CSV/XLSX）：有错误的行逐行列出，整个文件不导入。"""
    content = read_bytes(file)  # before signing in: a wrong path is the user's mistake
    with _client(api, user, password) as client:
        report = _check(client.post("/api/v1/roster", files={"file": (file.name, content)}))
    typer.echo(
        f"名册已导入：共 {report['total']} 个组织；新增 {report['added']}，"
        f"变更 {report['updated']}，移出名册 {report['deactivated']}，"
        f"重新列入 {report.get('reactivated', 0)}"
    )
    typer.echo(
        f"账号：新建 {report.get('accounts_created', 0)}，"
        f"调整范围 {report.get('accounts_rescoped', 0)}，"
        f"失去范围 {report.get('accounts_unscoped', 0)}（新账号须凭激活码设置密码）"
    )
    if report.get("departures_pending"):
        typer.echo(
            f"注意：{report['departures_pending']} 个组织已移出名册但仍在进行中的轮次里，"
            "请县委活动办决定关闭或保留（GET /api/v1/roster/departures）"
        )


def start_round(
    round_id: str,
    plan: Annotated[str, typer.Option(help="已有计划编号（如 seed-002、demo）")] = "demo",
    round_plan: Annotated[str, typer.Option(help="计划中的轮次编号")] = "demo",
    api: ApiUrl = None,
    user: ApiUser = None,
    password: ApiPassword = None,
) -> None:
    """创建并启动轮次，显示组织工作流启动进度。"""
    key = f"cli-{uuid.uuid4()}"
    with _client(api, user, password) as client:
        _check(
            client.post(
                "/api/v1/rounds",
                json={"round_id": round_id, "plan_id": plan, "round_plan_id": round_plan},
                headers={"Idempotency-Key": f"{key}-create"},
            )
        )
        _check(client.post(f"/api/v1/rounds/{round_id}/kickoff", headers={"Idempotency-Key": key}))
        progress = _check(client.get(f"/api/v1/rounds/{round_id}")).get("progress") or {}
        total = int(progress.get("total") or 0)
        with typer.progressbar(length=max(total, 1), label="启动组织工作流") as bar:
            shown = 0
            while not progress.get("starting_done"):
                time.sleep(0.5)
                progress = _check(client.get(f"/api/v1/rounds/{round_id}")).get("progress") or {}
                bar.length = max(int(progress.get("total") or 0), 1)
                bar.update(int(progress.get("started", 0)) - shown)
                shown = int(progress.get("started", 0))
    started = int(progress.get("started", 0))
    typer.echo(f"轮次 {round_id} 已启动：{started} 个组织")


def status(
    round_id: str,
    api: ApiUrl = None,
    user: ApiUser = None,
    password: ApiPassword = None,
) -> None:
    """显示轮次状态：各阶段组织数、亮灯、逾期数与各阶段完成情况。"""
    with _client(api, user, password) as client:
        body = _check(client.get(f"/api/v1/rounds/{round_id}"))
    state = str(body.get("status", ""))
    label = ROUND_STATUS_LABELS.get(state, state)
    typer.echo(f"{body['name']}（{round_id}）状态：{label}")
    if body.get("status_reason"):
        typer.echo(f"  原因：{body['status_reason']}")
    progress = body.get("progress")
    if state == "created":
        typer.echo("  尚未启动，还没有组织进度")
        return
    if not progress:
        typer.echo("  暂无组织进度（全县进度仅县级账号可见）")
        return
    total = progress.get("total")
    started = progress.get("started", 0)
    if total is None:
        typer.echo(f"  已启动 {started} 个组织（总数统计中）")
    else:
        typer.echo(f"  已启动 {started} / {total} 个组织")
    by_phase = progress.get("by_phase", {})
    typer.echo(
        "  所处阶段："
        + "，".join(
            f"{p.label} {by_phase.get(p.value, 0)}" for p in (*WORKING_PHASES, Phase.COMPLETED)
        )
    )
    by_light = progress.get("by_light", {})
    typer.echo(
        "  亮灯：" + "，".join(f"{light.label} {by_light.get(light.value, 0)}" for light in Light)
    )
    typer.echo(f"  逾期：{progress.get('overdue', 0)}")
