"""Administrator commands that go through the HTTP API, so they are scoped, audited and
idempotent exactly like the UI: import a roster, create and kick off a round with a progress
bar, show a round's status.

The API address and account come from options or ``CZ_API_URL`` / ``CZ_API_USER`` /
``CZ_API_PASSWORD``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from chuangzheng.api_client import SignedInAuth
from domain.lights import Light
from domain.phases import WORKING_PHASES, Phase

ApiUrl = Annotated[str, typer.Option(envvar="CZ_API_URL", help="API 地址")]
ApiUser = Annotated[str, typer.Option(envvar="CZ_API_USER", help="账号")]
ApiPassword = Annotated[str, typer.Option(envvar="CZ_API_PASSWORD", help="密码")]


@contextlib.contextmanager
def _client(api: str, user: str, password: str) -> Iterator[httpx.Client]:
    """A client logged in as ``user``; exits with the API's message when login fails."""
    with httpx.Client(base_url=api, timeout=60) as client:
        response = client.post("/api/v1/auth/login", json={"username": user, "password": password})
        _check(response)
        # Tokens last half an hour: a long progress loop signs in again when one expires.
        client.auth = SignedInAuth(user, password, token=response.json()["access_token"])
        yield client


def _check(response: httpx.Response) -> Any:
    """The JSON body, or every field error printed in Chinese and exit code 2."""
    if response.is_success:
        return response.json()
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text}
    typer.echo(f"错误 {response.status_code}: {body.get('message', '')}", err=True)
    for error in body.get("errors", []):
        typer.echo(f"  {error.get('field')}: {error.get('reason')}", err=True)
    raise typer.Exit(2)


def import_roster(
    file: Path,
    api: ApiUrl = "http://127.0.0.1:8000",
    user: ApiUser = "county",
    password: ApiPassword = "demo",
) -> None:
    """导入组织名册（CSV/XLSX）：有错误的行逐行列出，整个文件不导入。"""
    with _client(api, user, password) as client, file.open("rb") as handle:
        report = _check(client.post("/api/v1/roster", files={"file": (file.name, handle)}))
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
    api: ApiUrl = "http://127.0.0.1:8000",
    user: ApiUser = "county",
    password: ApiPassword = "demo",
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
        progress = _check(client.get(f"/api/v1/rounds/{round_id}"))["progress"] or {}
        total = int(progress.get("total") or 0)
        with typer.progressbar(length=max(total, 1), label="启动组织工作流") as bar:
            shown = 0
            while not progress.get("starting_done"):
                time.sleep(0.5)
                progress = _check(client.get(f"/api/v1/rounds/{round_id}"))["progress"] or {}
                bar.length = max(int(progress.get("total") or 0), 1)
                bar.update(int(progress.get("started", 0)) - shown)
                shown = int(progress.get("started", 0))
    typer.echo(f"轮次 {round_id} 已启动：{shown} 个组织")


def status(
    round_id: str,
    api: ApiUrl = "http://127.0.0.1:8000",
    user: ApiUser = "county",
    password: ApiPassword = "demo",
) -> None:
    """显示轮次状态：各阶段组织数、亮灯、逾期数与各阶段完成情况。"""
    with _client(api, user, password) as client:
        body = _check(client.get(f"/api/v1/rounds/{round_id}"))
    progress = body.get("progress") or {}
    typer.echo(f"{body['name']}（{round_id}）状态：{body['status']}")
    typer.echo(f"  已启动 {progress.get('started', 0)} / {progress.get('total')} 个组织")
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
